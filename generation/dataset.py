"""``dataset.json``: schema version, shape list, and the config of each product (views, queries).

Updated atomically (temp file + rename). A section records the config it was made with; writing
into a folder whose section holds another config is refused, so one folder never mixes data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from brokenchairs.errors import InputError
from brokenchairs.generation.shards import SCHEMA_VERSION

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
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data = {**data, "schema_version": SCHEMA_VERSION}
    tmp = root / f".{DATASET_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, root / DATASET_FILE)


def claim_section(root: Path, section: str, config: dict) -> dict:
    """Record ``config`` under ``section`` or check it equals the one recorded; returns the dataset."""
    data = read_dataset(root) or {}
    config = json.loads(json.dumps(config))  # compare as stored (tuples become lists)
    old = data.get(section, {}).get("config")
    if old is not None and old != config:
        diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
        raise InputError(Path(root) / DATASET_FILE,
                         f"folder holds {section} made with another config (differs in {', '.join(diff)}); use a new --out")
    data.setdefault(section, {})["config"] = config
    return data
