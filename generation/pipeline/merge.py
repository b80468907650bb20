"""``brokenchairs merge``: join the folders of job-array members into one dataset.

Every source must hold the same plan (equal ``dataset.json`` configs and shapes). Complete
shards are hard-linked (or copied across file systems) into the destination, which may also be
one of the sources; a shard present in several sources is taken once (same plan and seed: same
content). When all planned query shards are there, the manifest is rebuilt in plan order, so the
result equals one local run. Pointing every job at one shared folder needs no merge at all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from brokenchairs.errors import InputError
from brokenchairs.dataset.dataset_json import DATASET_FILE, read_dataset, update_dataset
from brokenchairs.generation.pipeline.generate import finish
from brokenchairs.dataset.shards import is_complete
from brokenchairs.shared_folder import tmp_path

PLAN_KEYS = ("queries", "views")


def _plan(data: dict) -> dict:
    return {"shapes": data.get("shapes"),
            **{k: {"config": (data.get(k) or {}).get("config"), "shards": (data.get(k) or {}).get("shards")}
               for k in PLAN_KEYS if data.get(k)}}


def _place(src: Path, dst: Path) -> None:
    tmp = tmp_path(dst)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def merge(sources: list[Path], out: Path) -> dict:
    """Returns counts: shards placed, already present, still missing."""
    if not sources:
        raise InputError(None, "give at least one source folder")
    datas = []
    for src in sources:
        d = read_dataset(src)
        if d is None:
            raise InputError(Path(src) / DATASET_FILE, "missing: not a dataset folder")
        datas.append(d)
    base = _plan(datas[0])
    for src, d in zip(sources[1:], datas[1:]):
        other = _plan(d)
        for key in ("shapes", *PLAN_KEYS):
            if other.get(key) and base.get(key) and other[key] != base[key]:
                raise InputError(Path(src) / DATASET_FILE, f"holds another plan than {sources[0]} (differs in {key})")
            base.setdefault(key, other.get(key))
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)

    def join(merged: dict) -> dict:
        for d in datas:
            for key, value in d.items():
                if key in PLAN_KEYS:
                    sec = merged.setdefault(key, {})
                    sec.setdefault("config", value.get("config"))
                    sec.setdefault("shards", value.get("shards"))
                elif key not in merged:
                    merged[key] = value
        if "queries" in merged:
            merged["queries"].pop("complete", None)
        return merged

    merged = join(read_dataset(out) or {})
    placed = present = 0
    names = list((merged.get("queries") or {}).get("shards") or []) + list((merged.get("views") or {}).get("shards") or {})
    for name in names:
        dst = out / "shards" / name
        if is_complete(dst):
            present += 1
            continue
        for src in sources:
            cand = Path(src) / "shards" / name
            if Path(src).resolve() != out.resolve() and is_complete(cand):
                _place(cand, dst)
                placed += 1
                break
    merged = update_dataset(out, join)
    missing = [n for n in names if not is_complete(out / "shards" / n)]
    if "queries" in merged:
        from brokenchairs.generation.units.tasks import QueryTask

        finish(out, [QueryTask(str(out / "shards" / n), ()) for n in merged["queries"]["shards"]])
    return {"placed": placed, "present": present, "missing": len(missing), "missing_names": missing[:5]}
