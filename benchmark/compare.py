"""``brokenchairs compare A B``: two evaluations of the same test queries side by side, with intervals
from a bootstrap over test shapes, their paired AUC difference and, when B is A's checkpoint scored
with shuffled references, how each normal query's score moves with the wrong reference; with
``by_need``, the same on the missing parts only the reference can settle and on those the photo can
(``benchmark.reference_need``).

A side may name several eval folders (comma-separated): a checkpoint ensemble (``benchmark.ensemble``)."""

from __future__ import annotations

from pathlib import Path

from brokenchairs.benchmark.ensemble import summary
from brokenchairs.benchmark.evals import fmt_interval, paired_auc, reference_sensitivity, references_used
from brokenchairs.benchmark.table2 import row_label
from brokenchairs.data_manifests.reference_controls import CONTROLS
from brokenchairs.errors import InputError


def _name(r: dict) -> str:
    m = r["metrics"]
    used = references_used(m)
    name = row_label(m["model"]) + (f" ({CONTROLS[used]})" if used != "own" else "")
    return name + (f", ensemble of {r['members']} evaluations" if r.get("members", 1) > 1 else "")


def need_lines(ra: dict, rb: dict, replicates: int) -> list[str]:
    """A and B on the missing parts only the reference can settle, and on those the photo can."""
    from brokenchairs.benchmark.reference_need import need_breakdown, reference_need

    m = ra["metrics"]
    need = reference_need(Path(m["data"]), m.get("split", "test"))
    if not need:
        return [f"by reference need: {m['data']} holds no missing-part query in split {m.get('split', 'test')}"]
    b = need_breakdown(rb, need, replicates)
    return [f"missing parts the {'reference alone' if name == 'needed' else 'photo'} can settle ({name}, "
            f"{e['anomalies']} anomalies against every normal query): A {fmt_interval(e['auc'])}, "
            f"B {fmt_interval(b[name]['auc'])}, A - B {fmt_interval(e['b'], signed=True)}"
            for name, e in need_breakdown(ra, need, replicates, {"b": rb}).items()]


def compare_evals(a: Path | list[Path], b: Path | list[Path], replicates: int = 2000, by_need: bool = False) -> str:
    fa, fb = ([a] if isinstance(a, Path) else list(a)), ([b] if isinstance(b, Path) else list(b))
    ra, rb = summary(fa, replicates), summary(fb, replicates)
    na, nb = ",".join(map(str, fa)), ",".join(map(str, fb))
    common = set(ra["ids"]) & set(rb["ids"])
    if not common:
        raise InputError(nb, f"no query in common with {na}: compare two evaluations of the same split")
    lines = [f"A {na}: {_name(ra)} on {ra['n']} queries of {ra['shapes']} shapes: AUC {fmt_interval(ra['auc'])}",
             f"B {nb}: {_name(rb)} on {rb['n']} queries of {rb['shapes']} shapes: AUC {fmt_interval(rb['auc'])}",
             f"A - B on their {len(common)} common queries (paired, {replicates} shape replicates): "
             f"{fmt_interval(paired_auc(ra, rb, replicates), signed=True)}"]
    ma, mb = ra["metrics"], rb["metrics"]
    if ma.get("checkpoint") == mb.get("checkpoint") and references_used(mb) != "own" and references_used(ma) == "own":
        sens = reference_sensitivity({"preds": ra["raw_preds"]}, {"preds": rb["raw_preds"]}, replicates)
        if sens is not None:
            unit = "points (mean score over the ensemble)" if ra.get("members", 1) > 1 else "points"
            lines.append(f"wrong reference, {sens['n']} normal queries: scored higher {fmt_interval(sens['rises'])} % "
                         f"(50 = reference ignored), mean score change {fmt_interval(sens['change'], signed=True)} {unit}")
    if by_need:
        lines += need_lines(ra, rb, replicates)
    return "\n".join(lines) + "\n"
