"""The fields of query and view shards, written once (DESIGN.md "Shards").

The shard writer (``shards``) creates the datasets of a shard in this order and with this
storage, ``validate`` checks every field's presence, dtype and per-item shape against it, and the
reader (``index``, ``read_view_group``) refuses a shard that lacks one. Change a field here and all
three follow; the order is part of the bytes (HDF5 lays objects out in creation order), so a
dataset made twice with one config is byte-identical.

Per-item shapes name the image size ``H``/``W`` (a shard's images share one), the encoder patch
grid ``h``/``w`` (``H // stride``) or fix a size. A query shard stores one item per query (the
first axis is the query); a view group stores one item per reference view (the first axis is V).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

STR = h5py.string_dtype("utf-8")
# gzip level 1 with shuffle: 2-3x smaller images for a few percent of the write time
COMPRESSED = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


@dataclass(frozen=True)
class Field:
    name: str
    dtype: str  # a numpy dtype name, or "str" (UTF-8)
    shape: tuple = ()  # per item: "H", "W" (image), "h", "w" (patch grid) or fixed ints
    storage: str = "plain"  # "rows": compressed, one chunk per item; "compressed": compressed, h5py's chunks
    doc: str = ""

    @property
    def numpy_dtype(self):
        return STR if self.dtype == "str" else np.dtype(self.dtype)

    def item_shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        return tuple(sizes[s] if isinstance(s, str) else s for s in self.shape)

    def matches_dtype(self, dtype) -> bool:
        if self.dtype == "str":
            return h5py.check_string_dtype(dtype) is not None
        return np.dtype(dtype) == np.dtype(self.dtype)


QUERY_FIELDS: tuple[Field, ...] = (
    Field("image", "uint8", ("H", "W", 3), "rows", "the photo, sRGB"),
    Field("mask_new", "bool", ("H", "W"), "rows", "pixels of the changed part in this image (empty for normals)"),
    Field("mask_old", "bool", ("H", "W"), "rows", "pixels the original part would cover (empty for normals)"),
    Field("object_mask", "bool", ("H", "W"), "rows", "pixels of the object"),
    Field("depth", "float32", ("H", "W"), "rows", "camera-space z of the object, 0 = background"),
    Field("label", "uint8", (), doc="1 = anomalous"),
    Field("anomaly_type", "uint8", (), doc="code of data_manifests.anomaly_types.ANOMALY_CODES (in the shard's attrs)"),
    Field("sample_id", "str", (), doc="unique over the dataset"),
    Field("shape_id", "str", (), doc="the reference shape: its views are in a view shard"),
    Field("part_path", "str", (), doc="the changed part's PartNet path ('' for normals)"),
    Field("material_id", "str", (), doc="the material set of the render"),
    Field("manifest", "str", (), doc="the sample's manifest line (JSON), as in manifest.jsonl"),
    Field("bbox", "float32", (4,), doc="xyxy pixels of mask_new | mask_old, NaN for normals"),
    Field("K", "float64", (3, 3), doc="intrinsics (dataset.cameras)"),
    Field("world_to_cam", "float64", (4, 4), doc="OpenCV-convention extrinsics (dataset.cameras)"),
    Field("azimuth", "float32", (), doc="radians"),
    Field("elevation", "float32", (), doc="radians"),
    Field("light_id", "uint8", (), doc="index of the light preset"),
)

VIEW_FIELDS: tuple[Field, ...] = (
    Field("gray", "uint8", ("H", "W"), "rows", "grayscale reference render"),
    Field("depth", "float32", ("H", "W"), "rows", "camera-space z, 0 = background"),
    Field("patch_xyz", "float32", ("h", "w", 3), "compressed", "a surface point per encoder patch (dataset.views)"),
    Field("patch_valid", "bool", ("h", "w"), doc="patches holding object pixels"),
    Field("K", "float64", (3, 3)),
    Field("world_to_cam", "float64", (4, 4)),
    Field("azimuth", "float64", ()),
    Field("elevation", "float64", ()),
)


def names(fields: tuple[Field, ...]) -> tuple[str, ...]:
    return tuple(f.name for f in fields)


def create(group: h5py.Group, field: Field, data, count: int, sizes: dict[str, int]) -> None:
    """Create ``field`` in ``group`` from ``data`` (``count`` items; a sequence of strings for "str")."""
    shape = (count, *field.item_shape(sizes))
    if field.dtype == "str":
        group.create_dataset(field.name, data=list(data), dtype=STR)
        return
    array = np.asarray(data, dtype=field.numpy_dtype).reshape(shape) if count else np.zeros(shape, field.numpy_dtype)
    if field.storage == "rows" and count:
        group.create_dataset(field.name, data=array, chunks=(1, *shape[1:]), **COMPRESSED)
    elif field.storage == "compressed" and count:
        group.create_dataset(field.name, data=array, **COMPRESSED)
    else:
        group.create_dataset(field.name, data=array)


def check(group: h5py.Group, fields: tuple[Field, ...], stride: int | None = None) -> list[str]:
    """Problems of ``group`` against ``fields``: a missing field, another first dimension than the
    first field's, a dtype or a per-item shape other than the table's. ``H``/``W`` are taken from
    the first field that names them; the patch grid ``h``/``w`` is ``H // stride`` (else, too, from
    the first field that names it)."""
    missing = [f.name for f in fields if f.name not in group]
    if missing:
        return [f"lacks {', '.join(missing)}"]
    count = group[fields[0].name].shape[0]
    problems = [f"{f.name}: first dimension {group[f.name].shape[0]}, {fields[0].name} has {count}"
                for f in fields if group[f.name].shape[0] != count]
    sizes: dict[str, int] = {}
    for f in fields:
        d = group[f.name]
        if len(d.shape) != 1 + len(f.shape):
            problems.append(f"{f.name} has shape {d.shape}, expected {1 + len(f.shape)} dimensions")
            continue
        for sym, n in zip(f.shape, d.shape[1:]):
            if isinstance(sym, str) and sym not in sizes:
                sizes[sym] = sizes[sym.upper()] // stride if sym in "hw" and stride and sym.upper() in sizes else n
        if d.shape[1:] != f.item_shape(sizes) or not f.matches_dtype(d.dtype):
            problems.append(f"{f.name} has dtype {d.dtype} shape {d.shape}, expected {f.dtype} "
                            f"{(count, *f.item_shape(sizes))}")
    return problems
