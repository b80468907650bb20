"""``brokenchairs compare A B``: two evaluations of the same test queries side by side, with intervals
from a bootstrap over test shapes, their paired AUC difference and, when B is A's checkpoint scored
with shuffled references, how each normal query's score moves with the wrong reference."""

from __future__ import annotations

from pathlib import Path

from brokenchairs.benchmark.table2 import fmt_interval, paired_auc, row_label, reference_sensitivity, row_summary
from brokenchairs.errors import InputError


def _name(r: dict) -> str:
    m = r["metrics"]
    return row_label(m["model"]) + (" (shuffled references)" if m.get("shuffled_references") else "")


def compare_evals(a: Path, b: Path, replicates: int = 2000) -> str:
    ra, rb = row_summary(a, replicates), row_summary(b, replicates)
    common = set(ra["ids"]) & set(rb["ids"])
    if not common:
        raise InputError(b, f"no query in common with {a}: compare two evaluations of the same split")
    lines = [f"A {a}: {_name(ra)} on {ra['n']} queries of {ra['shapes']} shapes: AUC {fmt_interval(ra['auc'])}",
             f"B {b}: {_name(rb)} on {rb['n']} queries of {rb['shapes']} shapes: AUC {fmt_interval(rb['auc'])}",
             f"A - B on their {len(common)} common queries (paired, {replicates} shape replicates): "
             f"{fmt_interval(paired_auc(ra, rb, replicates), signed=True)}"]
    ma, mb = ra["metrics"], rb["metrics"]
    if ma.get("checkpoint") == mb.get("checkpoint") and mb.get("shuffled_references") and not ma.get("shuffled_references"):
        sens = reference_sensitivity(ra, rb, replicates)
        if sens is not None:
            lines.append(f"wrong reference, {sens['n']} normal queries: scored higher {fmt_interval(sens['rises'])} % "
                         f"(50 = reference ignored), mean score change {fmt_interval(sens['change'], signed=True)} points")
    return "\n".join(lines) + "\n"
