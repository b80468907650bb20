"""Lab script (docs/evidence-cpu.md, "Which wrong reference moves CMT"): the shuffled-reference
control split by whether a query's wrong reference is a chair of its own procedural family.

    python family_shuffle.py OWN SHUFFLED [OWN SHUFFLED ...]

Each pair: an evaluation folder of one checkpoint with its own references and the same checkpoint's
with shuffled references (predictions.csv). `evaluate` gives each test shape the reference of the
next shape in sorted order (`benchmark.data.shuffled_references`), so the pairing is recomputed here;
a procedural chair's family follows from its seed and index as in `synth_chair`. Prints, for the
queries whose wrong reference is of the same family and for the rest: the AUC with own and with
shuffled references, and the mean change of normal and of anomalous queries' scores (points of
probability), pooled over the pairs given."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from brokenchairs.benchmark.wrong_reference import shuffled_references
from brokenchairs.generation.shapes.procedural import FAMILY_NAMES


def family(shape_id: str) -> str:
    seed, index = (int(x) for x in shape_id.rsplit("-", 2)[-2:])
    order = np.random.default_rng([seed, 0xFA]).permutation(len(FAMILY_NAMES))
    return FAMILY_NAMES[order[index % len(FAMILY_NAMES)]]


def rows(own_dir: str, shuffled_dir: str):
    own = {r["sample_id"]: r for r in csv.DictReader(open(Path(own_dir) / "predictions.csv"))}
    shuffled = {r["sample_id"]: r for r in csv.DictReader(open(Path(shuffled_dir) / "predictions.csv"))}
    ref = shuffled_references(sorted({r["shape_id"] for r in own.values()}))
    for sid, r in own.items():
        yield int(r["label"]), float(r["score"]), float(shuffled[sid]["score"]), family(r["shape_id"]) == family(ref[r["shape_id"]])


def main(folders: list[str]) -> None:
    if not folders or len(folders) % 2:
        sys.exit("give pairs of evaluation folders: OWN SHUFFLED [OWN SHUFFLED ...]")
    data = np.array([row for a, b in zip(folders[::2], folders[1::2]) for row in rows(a, b)])
    y, own, shuffled, same = data[:, 0].astype(int), data[:, 1], data[:, 2], data[:, 3].astype(bool)
    for name, m in (("same family", same), ("other family", ~same)):
        a_own, a_shuf = 100 * roc_auc_score(y[m], own[m]), 100 * roc_auc_score(y[m], shuffled[m])
        change = {k: 100 * float(np.mean(shuffled[m & (y == v)] - own[m & (y == v)])) for k, v in (("normal", 0), ("anomalous", 1))}
        print(f"{name:12s} queries {int(m.sum()):6d}  AUC own {a_own:.1f} shuffled {a_shuf:.1f} drop {a_own - a_shuf:+.1f}  "
              f"score change: normal {change['normal']:+.1f} anomalous {change['anomalous']:+.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
