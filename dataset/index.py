"""The dataset reader both sides use: which queries a split holds and where each shape's views are.

``DatasetIndex.open(root, split)`` reads the small per-query columns of every query shard once
(labels, types, ids) and maps each shape to its view shard; it refuses, with one line naming the
file, a dataset without views for some query shape, an empty split or a corrupt shard. The
pixels are read by the consumer (``benchmark.data.ShardDataset``) through ``shards.open_shard``.

Normal twins (``generate --twins``: the normal render of an anomalous query's camera, materials
and light) are extra rows outside Table 1's balance: a split holds them only when asked
(``twins=True``, for training on minimal pairs); evaluation never sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from brokenchairs.data_manifests.anomaly_types import TYPE_NAMES
from brokenchairs.dataset import schema
from brokenchairs.dataset.dataset_json import read_dataset
from brokenchairs.dataset.queries import TWIN_SUFFIX, is_twin_id
from brokenchairs.dataset.shards import as_str, open_shard
from brokenchairs.dataset.splits import SPLITS, split_of
from brokenchairs.errors import InputError


@dataclass(frozen=True)
class QueryRef:
    shard: str
    row: int
    sample_id: str
    shape_id: str
    label: int
    anomaly_type: str
    split: str


def shape_splits(data: dict) -> dict[str, str]:
    """shape id -> split, from dataset.json ``splits`` when recorded, else the default rule."""
    rec = (data.get("splits") or {}).get("shapes")
    if rec:
        return {sid: name for name, ids in rec.items() for sid in ids}
    return {r["shape_id"]: split_of(r["shape_id"]) for r in data.get("shapes", [])}


def parse_split(split: str) -> set[str]:
    names = set(SPLITS) if split == "all" else {s.strip() for s in split.split(",") if s.strip()}
    bad = names - set(SPLITS)
    if bad or not names:
        raise InputError(None, f"unknown split {split!r}; use train, val, test, a comma list or all")
    return names


@dataclass
class DatasetIndex:
    root: Path
    queries: list[QueryRef]
    view_shard: dict[str, str]  # shape id -> view shard path
    resolution: int
    num_views: int

    @classmethod
    def open(cls, root: Path, split: str = "train", need_views: bool = True, allow_empty: bool = False,
             twins: bool = False) -> DatasetIndex:
        root = Path(root)
        data = read_dataset(root)
        if data is None:
            raise InputError(root, "not a dataset folder (no dataset.json): run brokenchairs generate first")
        qsec = data.get("queries") or {}
        if not qsec.get("shards"):
            raise InputError(root / "dataset.json", "holds no query shards: run brokenchairs generate first")
        wanted = parse_split(split)
        splits = shape_splits(data)
        queries: list[QueryRef] = []
        for name in qsec["shards"]:
            path = root / "shards" / name
            if not path.is_file():
                raise InputError(path, "query shard listed in dataset.json is missing (re-run generate)")
            with open_shard(path, "queries") as f:
                missing = [k for k in schema.names(schema.QUERY_FIELDS) if k not in f]
                if missing:
                    raise InputError(path, f"corrupt query shard (lacks {', '.join(missing)})")
                try:
                    cols = {k: f[k][()] for k in ("sample_id", "shape_id", "label", "anomaly_type")}
                except (KeyError, OSError) as exc:
                    raise InputError(path, f"corrupt query shard ({exc})") from exc
            for row in range(len(cols["label"])):
                sid = as_str(cols["shape_id"][row])
                sp = splits.get(sid) or split_of(sid)
                if sp in wanted and (twins or not is_twin_id(as_str(cols["sample_id"][row]))):
                    queries.append(QueryRef(str(path), row, as_str(cols["sample_id"][row]), sid, int(cols["label"][row]),
                                            TYPE_NAMES.get(int(cols["anomaly_type"][row]), "unknown"), sp))
        if not queries and not allow_empty:
            raise InputError(root, f"split {split!r} holds no queries")
        view_shard: dict[str, str] = {}
        vsec = data.get("views") or {}
        for name, ids in (vsec.get("shards") or {}).items():
            for sid in ids:
                view_shard[sid] = str(root / "shards" / name)
        if need_views:
            lacking = sorted({q.shape_id for q in queries} - set(view_shard))
            if lacking:
                raise InputError(root / "dataset.json", f"no reference views for {len(lacking)} query shapes "
                                 f"(e.g. {lacking[0]}): run brokenchairs render-views --out {root}")
        res = int(qsec.get("config", {}).get("resolution", 0))
        return cls(root, queries, view_shard, res, int(vsec.get("config", {}).get("views", 0)))

    def __len__(self) -> int:
        return len(self.queries)

    def twin_pairs(self) -> dict[int, int]:
        """Query position -> the position of its pair's anomalous member, for both members of every
        (anomalous query, normal twin) pair whose two rows this index holds."""
        at = {q.sample_id: i for i, q in enumerate(self.queries)}
        pairs: dict[int, int] = {}
        for i, q in enumerate(self.queries):
            if is_twin_id(q.sample_id):
                partner = at.get(q.sample_id[: -len(TWIN_SUFFIX)])
                if partner is not None:
                    pairs[i] = pairs[partner] = partner
        return pairs

    def shapes(self) -> list[str]:
        return list(dict.fromkeys(q.shape_id for q in self.queries))
