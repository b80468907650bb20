"""``dataset.json``: schema version, shape list, and the config of each product (views, queries).

Every change is a read-modify-write under the folder's lock (``update_dataset``; an ``O_EXCL`` lock
file that works on a network file system, ``brokenchairs.shared_folder``) ending in an atomic
rename of a temporary of its own, so job-array members that start or finish together -- on one
host or several -- never lose each other's changes or find their temporary gone. A section
records the config it was made with; writing into a folder whose section holds another config is
refused, so one folder never mixes data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from brokenchairs.errors import InputError
from brokenchairs.dataset.shards import SCHEMA_VERSION
from brokenchairs.shared_folder import locked, write_atomic

DATASET_FILE = "dataset.json"


def read_dataset(root: Path) -> dict | None:
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from exc
    if data.get("schema_version") != SCHEMA_VERSION:
        raise InputError(path, f"dataset schema {data.get('schema_version')} is not {SCHEMA_VERSION}")
    return data


def write_dataset(root: Path, data: dict) -> None:
    """Replace dataset.json atomically; callers that read it first hold ``dataset_lock`` (or use ``update_dataset``)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / DATASET_FILE, json.dumps({**data, "schema_version": SCHEMA_VERSION}, indent=1, sort_keys=True))


def dataset_lock(root: Path):
    """The folder's lock: hold it around any read-modify-write of dataset.json or manifest.jsonl."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return locked(root / DATASET_FILE)


def update_dataset(root: Path, change: Callable[[dict], dict]) -> dict:
    """Under the folder's lock: read dataset.json ({} if absent), apply ``change``, write the result."""
    with dataset_lock(root):
        data = change(read_dataset(root) or {})
        write_dataset(root, data)
    return data


def claim_section(data: dict, section: str, config: dict, root: Path) -> dict:
    """Record ``config`` under ``section`` of ``data`` or check it equals the one recorded."""
    config = json.loads(json.dumps(config))  # compare as stored (tuples become lists)
    old = data.get(section, {}).get("config")
    if old is not None and old != config:
        diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        raise InputError(Path(root) / DATASET_FILE,
                         f"folder holds {section} made with another config (differs in {', '.join(diff)}); use a new --out")
    data.setdefault(section, {})["config"] = config
    return data
