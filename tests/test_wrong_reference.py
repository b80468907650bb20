"""Wrong references: the kin a shape may borrow views from (its procedural family), the training
option that pairs normal photos with a kin's views, and the test-time controls (shuffled, near-miss)."""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner

from brokenchairs.benchmark.config import resolve_config
from brokenchairs.benchmark.data import EpochSampler
from brokenchairs.benchmark.wrong_reference import (control_references, family_kin, kin_of, near_miss_references,
                                                    shape_groups, shuffled_references)
from brokenchairs.cli import main
from brokenchairs.dataset.dataset_json import write_dataset
from brokenchairs.dataset.index import DatasetIndex, QueryRef
from brokenchairs.dataset.splits import split_of
from brokenchairs.errors import InputError
from brokenchairs.generation.shapes.procedural import synth_chair
from brokenchairs.generation.shapes.sources import ShapeRef, procedural_refs


@pytest.fixture()
def shapes_root(tmp_path):
    """A dataset.json listing 40 procedural chairs of seed 3 and one PartNet folder (no shards needed)."""
    refs = procedural_refs(40, 3) + [ShapeRef("anno-7", "partnet", path="/nowhere/anno-7")]
    write_dataset(tmp_path, {"shapes": [r.to_json() for r in refs]})
    return tmp_path, [r.shape_id for r in refs]


def test_a_procedural_chairs_group_is_the_family_it_was_built_as(shapes_root):
    root, ids = shapes_root
    groups = shape_groups(root, ids)
    for index in (0, 7, 13, 39):
        assert groups[ids[index]] == synth_chair(3, index).meta["family"]
    assert groups["anno-7"] == ""  # no family known: every such shape in one group
    assert len(set(groups.values()) - {""}) == 10
    assert set(shape_groups(root, ids, "any").values()) == {""}
    with pytest.raises(InputError, match="unknown wrong-reference kin 'legs'"):
        shape_groups(root, ids, "legs")


def test_kin_are_the_other_members_of_a_group_and_lone_shapes_have_none(shapes_root):
    root, ids = shapes_root
    groups = shape_groups(root, ids)
    kin = kin_of(groups)
    assert "anno-7" not in kin  # alone in its group
    for sid, others in kin.items():
        assert sid not in others and others and all(groups[o] == groups[sid] for o in others)
        assert len(others) == Counter(groups.values())[groups[sid]] - 1


def test_near_miss_references_are_a_derangement_within_each_family(shapes_root):
    root, ids = shapes_root
    groups = shape_groups(root, ids)
    ref = near_miss_references(root, ids)
    assert set(ref) == set(ids) - {"anno-7"}
    assert all(ref[s] != s and groups[ref[s]] == groups[s] for s in ref)
    assert sorted(ref.values()) == sorted(ref)  # every shape lends its views once
    assert control_references(root, ids, "near-miss") == ref
    with pytest.raises(InputError, match="two procedural chairs of one family"):
        near_miss_references(root, ids[:10] + ["anno-7"])  # ten chairs, ten families, and a chair of no family
    test_ids = [s for s in ids if split_of(s) == "test"]
    assert bool(family_kin(root, test_ids)) == bool(kin_of({s: groups[s] for s in test_ids if groups[s]}))
    with pytest.raises(InputError, match="unknown reference control"):
        control_references(root, ids, "mirrored")


def test_shuffled_references_are_a_derangement_of_all_shapes(shapes_root):
    _, ids = shapes_root
    ref = shuffled_references(ids)
    assert all(ref[s] != s for s in ids) and sorted(ref.values()) == sorted(ids)
    with pytest.raises(InputError, match="at least 2 shapes"):
        shuffled_references(ids[:1])


def _index(n_shapes=12, per_shape=10):
    qs = [QueryRef("s.h5", i, f"q{i}", f"shape{i // per_shape}", int(i % 3 == 0), "missing" if i % 3 == 0 else "normal",
                   "train") for i in range(n_shapes * per_shape)]
    return DatasetIndex(root=None, queries=qs, view_shard={}, resolution=64, num_views=20)


def test_the_sampler_gives_that_share_of_normal_queries_one_kins_views_per_shape_and_epoch():
    index = _index()
    kin = {f"shape{k}": [f"shape{j}" for j in range(12) if j % 2 == k % 2 and j != k] for k in range(12)}  # two "families"
    plain = [key for b in EpochSampler(index, seed=5, batch_size=8, shapes_per_batch=2) for key in b]
    s = EpochSampler(index, seed=5, batch_size=8, shapes_per_batch=2, wrong_reference=0.3, kin=kin)
    keyed = [key for b in s for key in b]
    assert [k[:3] for k in keyed] == plain  # the option only adds a fourth element: order, seeds and views stay
    assert keyed == [key for b in s for key in b]  # deterministic
    wrong = [k for k in keyed if len(k) == 4]
    normals = [k for k in keyed if index.queries[k[0]].label == 0]
    assert all(index.queries[k[0]].label == 0 for k in wrong)  # anomalous queries keep their own reference
    assert 0.2 < len(wrong) / len(normals) < 0.4
    lent: dict[str, set] = {}
    for i, *_, other in wrong:
        shape = index.queries[i].shape_id
        assert other in kin[shape]
        lent.setdefault(shape, set()).add(other)
    assert all(len(o) == 1 for o in lent.values())  # one kin per shape in an epoch: its views are encoded once
    s.set_epoch(1)
    assert [k for b in s for k in b if len(k) == 4] != wrong
    late = EpochSampler(index, seed=5, batch_size=8, shapes_per_batch=2, wrong_reference=0.3, kin=kin, wrong_from=2)
    for epoch, some in ((0, False), (1, False), (2, True), (5, True)):  # wrong references from epoch 2 on
        late.set_epoch(epoch)
        assert any(len(k) == 4 for b in late for k in b) == some
    with pytest.raises(InputError, match="needs shapes with kin"):
        EpochSampler(index, seed=5, batch_size=8, wrong_reference=0.3)


def test_the_option_is_validated_and_refused_for_a_model_without_references(tmp_path):
    with pytest.raises(InputError, match="wrong_reference"):
        resolve_config("cmt", "tiny", None, {"wrong_reference": "1.5"})
    with pytest.raises(InputError, match="wrong_reference_kin"):
        resolve_config("cmt", "tiny", None, {"wrong_reference_kin": "legs"})
    cfg = resolve_config("cmt", "tiny", None, {"wrong_reference": "0.25", "wrong_reference_kin": "any"})
    assert (cfg.wrong_reference, cfg.wrong_reference_kin) == (0.25, "any")


def test_eval_refuses_two_controls_at_once_in_one_line(tmp_path):
    res = CliRunner().invoke(main, ["eval", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(tmp_path),
                                    "--out", str(tmp_path / "e"), "--shuffle-references", "--references", "near-miss"])
    assert res.exit_code == 2 and "give one" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (tmp_path / "e").exists()
