"""HDF5 shards: the contract between generation and the benchmark (DESIGN.md "Shards").

A shard is written under a temporary name of its own (``<name>.h5.tmp-<host>-<host id>-<pid>-<nonce>``,
``brokenchairs.shared_folder``) and renamed once its ``complete`` attribute is set, so a killed run
never leaves a file that looks complete, and two processes that happen to write the same shard --
on one host or two -- never write into one file; ``is_complete`` treats unreadable, truncated or
unflagged files as incomplete so a re-run redoes them, and ``remove_stale_tmp`` deletes the
temporaries it can prove dead (``shared_folder.sweep``).

View shards hold one group per reference shape (name = shape id) with ``gray`` (V,H,W) uint8,
``depth`` (V,H,W) float32 (0 = background), ``K`` (V,3,3), ``world_to_cam`` (V,4,4),
``azimuth``/``elevation`` (V,), ``patch_xyz`` (V,h,w,3) float32 and ``patch_valid`` (V,h,w) bool.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py

from brokenchairs.dataset import schema
from brokenchairs.dataset.views import ViewSet
from brokenchairs.errors import InputError
from brokenchairs.shared_folder import sweep, tmp_path

SCHEMA_VERSION = 1


@contextlib.contextmanager
def atomic_h5(path: Path, kind: str) -> Iterator[h5py.File]:
    """Open a temporary of this write (``tmp_path``: h5py writes by path); on success flag it complete
    and rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["kind"] = kind
            f.attrs["complete"] = False
            yield f
            f.attrs["complete"] = True
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_tmp(folder: Path) -> int:
    """Delete the temporaries in ``folder`` that are provably dead (``shared_folder.sweep``); returns the count."""
    return len(sweep(folder))


def is_complete(path: Path) -> bool:
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", False)) and int(f.attrs.get("schema_version", -1)) == SCHEMA_VERSION
    except OSError:  # truncated or not HDF5: redo it
        return False


def open_shard(path: Path, kind: str) -> h5py.File:
    """Open a complete shard for reading, or raise InputError naming the file."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 shard ({exc})") from exc
    if not f.attrs.get("complete", False):
        f.close()
        raise InputError(path, "shard is incomplete (no complete flag): re-run the command that writes it")
    if f.attrs.get("kind") != kind or int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
        found = (f.attrs.get("kind"), f.attrs.get("schema_version"))
        f.close()
        raise InputError(path, f"expected a {kind} shard of schema {SCHEMA_VERSION}, found {found}")
    return f


# --- view shards ------------------------------------------------------------------------------
def write_view_shard(path: Path, viewsets: Iterable[ViewSet], attrs: dict | None = None) -> int:
    """Write one view shard; returns the number of shapes written."""
    n = 0
    with atomic_h5(path, "views") as f:
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        for vs in viewsets:
            g = f.create_group(vs.shape_id)
            v, h, w = vs.gray.shape
            sizes = {"H": h, "W": w, "h": vs.patch_valid.shape[1], "w": vs.patch_valid.shape[2]}
            for field in schema.VIEW_FIELDS:
                schema.create(g, field, getattr(vs, field.name), v, sizes)
            g.attrs["num_views"] = v
            n += 1
    return n


def read_view_group(group: h5py.Group) -> ViewSet:
    names = schema.names(schema.VIEW_FIELDS)
    missing = [k for k in names if k not in group]
    if missing:
        raise InputError(group.file.filename, f"view group {group.name} lacks {', '.join(missing)}")
    return ViewSet(shape_id=group.name.strip("/"), **{k: group[k][()] for k in names})


def read_views(path: Path, shape_id: str) -> ViewSet:
    with open_shard(path, "views") as f:
        if shape_id not in f:
            raise InputError(path, f"no views of shape {shape_id}")
        return read_view_group(f[shape_id])


# --- query shards -------------------------------------------------------------------------------
def write_query_shard(path: Path, samples: list, manifest_lines: list[str], attrs: dict | None = None) -> int:
    """Write query samples (``dataset.queries.QuerySample``) with their manifest lines, one
    dataset per field of ``schema.QUERY_FIELDS``."""
    from brokenchairs.data_manifests.anomaly_types import ANOMALY_CODES

    n = len(samples)
    with atomic_h5(path, "queries") as f:
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        f.attrs["anomaly_codes"] = json.dumps(ANOMALY_CODES)
        res = int(attrs.get("resolution", 0)) if attrs else 0
        h = w = samples[0].image.shape[0] if n else res
        for field in schema.QUERY_FIELDS:
            if field.name == "manifest":
                column = manifest_lines
            elif field.name == "anomaly_type":
                column = [ANOMALY_CODES[s.anomaly_type] for s in samples]
            else:
                column = [getattr(s, field.name) for s in samples]
            schema.create(f, field, column, n, {"H": h, "W": w})
    return n


def as_str(x) -> str:
    """An HDF5 string cell as ``str`` (h5py returns bytes for variable-length UTF-8)."""
    return x.decode() if isinstance(x, bytes) else str(x)


def read_manifest_lines(path: Path) -> list[str]:
    with open_shard(path, "queries") as f:
        return [as_str(m) for m in f["manifest"][()]]
