"""Wrong references: which other shape's views a query may be paired with, in training or as a control.

A shape's *kin* are the other shapes of its group in the split: for procedural chairs their family
(``chair_family``; the same make and other proportions, or with ``--chair-variety one-short``
sometimes one member more or less), for every other source one group of all of them. Training
with ``--set wrong_reference=P`` pairs a normal query with a kin's reference views, labelled
anomalous, with probability P (``EpochSampler``): the photo no longer shows the reference's
shape. The released code never does this; it is a measured deviation (docs/evidence-cpu.md,
"Wrong references in training"). ``near_miss_references`` gives the matching test-time control:
each test shape with a kin's reference, the wrong reference that only a part-by-part comparison
can tell from the right one.
"""

from __future__ import annotations

from pathlib import Path

from brokenchairs.data_manifests.reference_controls import CONTROLS, KIN
from brokenchairs.dataset.dataset_json import read_dataset
from brokenchairs.errors import InputError
from brokenchairs.generation.shapes.procedural import chair_family
from brokenchairs.generation.shapes.sources import ShapeRef


def shuffled_references(shapes: list[str]) -> dict[str, str]:
    """Each shape mapped to another one's reference (a cyclic shift of the sorted ids): the
    "does it look at the reference?" control. Fewer than 2 shapes: nothing to shuffle."""
    order = sorted(set(shapes))
    if len(order) < 2:
        raise InputError(None, "shuffled references need at least 2 shapes in the split")
    return {a: b for a, b in zip(order, order[1:] + order[:1])}


def shape_groups(root: Path, shapes: list[str], kin: str = "family") -> dict[str, str]:
    """Shape id -> its group: the procedural family (``kin="family"``), else one group for all."""
    if kin not in KIN:
        raise InputError(None, f"unknown wrong-reference kin {kin!r}; known: {', '.join(KIN)}")
    data = read_dataset(Path(root))
    if data is None:
        raise InputError(root, "not a dataset folder (no dataset.json)")
    refs = {d["shape_id"]: ShapeRef.from_json(d) for d in data.get("shapes", [])}
    groups = {}
    for sid in shapes:
        ref = refs.get(sid)
        groups[sid] = chair_family(ref.seed, ref.index) if kin == "family" and ref and ref.kind == "procedural" else ""
    return groups


def kin_of(groups: dict[str, str]) -> dict[str, list[str]]:
    """Shape id -> the other shapes of its group, sorted; shapes alone in their group are left out."""
    members: dict[str, list[str]] = {}
    for sid in sorted(groups):
        members.setdefault(groups[sid], []).append(sid)
    return {sid: [o for o in members[g] if o != sid] for sid, g in groups.items() if len(members[g]) > 1}


def family_kin(root: Path, shapes: list[str]) -> dict[str, list[str]]:
    """``kin_of`` over the shapes whose procedural family is known; empty: no near-miss control."""
    return kin_of({sid: g for sid, g in shape_groups(root, shapes).items() if g})


def near_miss_references(root: Path, shapes: list[str]) -> dict[str, str]:
    """Each shape mapped to the next shape of its own group (a cyclic shift within the group,
    sorted ids): the near-miss control beside ``shuffled_references``. Shapes alone in their
    family, or of no known family (PartNet, meshes), keep their own reference; none shares a
    family: an error."""
    kin = family_kin(root, shapes)
    if not kin:
        raise InputError(root, "near-miss references need two procedural chairs of one family in the split")
    out = {}
    for sid, others in kin.items():
        ring = sorted([sid, *others])
        out[sid] = ring[(ring.index(sid) + 1) % len(ring)]
    return out


def control_references(root: Path, shapes: list[str], control: str) -> dict[str, str]:
    """Query shape -> the shape whose views it gets under a wrong-reference ``control`` (``CONTROLS``)."""
    if control == "shuffled":
        return shuffled_references(shapes)
    if control == "near-miss":
        return near_miss_references(root, shapes)
    raise InputError(None, f"unknown reference control {control!r}; known: {', '.join(CONTROLS)}")
