"""Planning is pure: Table 1 view laws, shard packing, job-array shares, dry runs that write nothing."""

from __future__ import annotations

import json
import statistics

import pytest
from click.testing import CliRunner

from brokenchairs.cli import main
from brokenchairs.data_manifests import load_json
from brokenchairs.data_manifests.anomaly_types import ANOMALY_CODES, ANOMALY_TYPES, TYPE_NAMES
from brokenchairs.generation.pipeline.generate import KINDS
from brokenchairs.generation.pipeline.plan import TYPE_SHARES, expected_queries, plan_tasks, plan_units, task_share
from brokenchairs.generation.shapes.sources import procedural_refs


def test_views_per_unit_follow_the_papers_table1_law():
    units = plan_units(procedural_refs(2000, 0), KINDS, seed=0)
    anomaly = [u.views for u in units if u.kind != "normal"]
    normal = [u.views for u in units if u.kind == "normal"]
    assert (min(anomaly), max(anomaly), statistics.median(anomaly)) == (1, 8, 4)
    assert (min(normal), max(normal), statistics.median(normal)) == (1, 12, 8)
    assert units == plan_units(procedural_refs(2000, 0), KINDS, seed=0)  # deterministic
    other = plan_units(procedural_refs(2000, 0), KINDS, seed=1)
    assert [u.views for u in other] != [u.views for u in units] and all(u.views == 3 for u in
                                                                         plan_units(procedural_refs(5, 0), KINDS, 0, 3))
    # a unit's plan does not depend on which other shapes are in the dataset
    assert plan_units(procedural_refs(2000, 0)[10:11], KINDS, seed=0) == [u for u in units if u.shape.index == 10]


def test_types_cover_table1s_share_of_shapes_and_every_shape_keeps_its_normal_unit():
    refs = procedural_refs(4000, 0)
    units = plan_units(refs, KINDS, seed=0)
    for kind, share in TYPE_SHARES.items():
        got = sum(u.kind == kind for u in units) / len(refs)
        assert abs(got - share) < 0.025, (kind, got, share)  # binomial sd at n=4000: 0.007
    assert sum(u.kind == "normal" for u in units) == len(refs)
    assert round(TYPE_SHARES["swapped"], 3) == round(6427 / 8143, 3)  # Table 1 itself
    every = plan_units(refs[:50], KINDS, seed=0, balance="every-shape")
    assert len(every) == 50 * len(KINDS)
    # the balanced plan is a subset of the every-shape plan: same units, same seeds, same views
    assert set(plan_units(refs[:50], KINDS, seed=0)) <= set(every)


@pytest.mark.parametrize("twins", [False, True])
def test_shards_pack_units_in_order_to_about_shard_size(tmp_path, twins):
    units = plan_units(procedural_refs(40, 3), KINDS, seed=3)
    tasks = plan_tasks(tmp_path, units, shard_size=16, twins=twins)
    assert [u for t in tasks for u in t.units] == units
    sizes = [sum(expected_queries(u, twins) for u in t.units) for t in tasks]
    assert all(s >= 16 for s in sizes[:-1]) and max(sizes) < 16 + (17 if twins else 13)
    assert len({t.shard for t in tasks}) == len(tasks)


def test_job_array_shares_partition_the_shards():
    tasks = list(range(23))
    shares = [task_share(tasks, 4, i) for i in range(4)]
    assert sorted(t for s in shares for t in s) == tasks
    with pytest.raises(ValueError):
        task_share(tasks, 4, 4)


def test_plan_prints_an_estimate_and_writes_nothing_and_so_does_generate_dry_run(tmp_path):
    out = tmp_path / "ds"
    res = CliRunner().invoke(main, ["plan", "--num-shapes", "50", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "estimate:" in res.output and "CPU-hours" in res.output and "train" in res.output
    assert not out.exists()
    res = CliRunner().invoke(main, ["generate", "--num-shapes", "5", "--out", str(out), "--dry-run"])
    assert res.exit_code == 0 and "estimate:" in res.output and not out.exists()


def test_config_file_describes_a_dataset_and_flags_override_it(tmp_path):
    cfg = tmp_path / "ds.json"
    cfg.write_text(json.dumps({"num_shapes": 30, "anomalies": ["broken", "normal"], "views_per_variant": 2,
                               "resolution": 128, "split_ratios": [0.5, 0.25, 0.25]}))
    res = CliRunner().invoke(main, ["plan", "--config", str(cfg), "--out", str(tmp_path / "x"), "--json",
                                    "--views-per-variant", "5"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["shapes"] == 30 and set(s["units"]) == {"broken", "normal"}
    assert set(s["views"]["broken"]) == {5}  # the flag won over the file
    assert s["splits"]["train"] < 30 and sum(s["splits"].values()) == 30
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"num_shape": 3}))
    res = CliRunner().invoke(main, ["plan", "--config", str(bad), "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "bad.json" in res.output and "num_shape" in res.output


def test_the_manifests_name_exactly_the_anomaly_types_and_codes_are_a_bijection():
    assert tuple(load_json("table1.json")["types"]) == ANOMALY_TYPES == tuple(TYPE_SHARES)
    assert set(load_json("anomaly_spec.json")) - {"description", "perceptibility"} == set(ANOMALY_TYPES)
    assert ANOMALY_CODES["normal"] == 0 and sorted(ANOMALY_CODES.values()) == list(range(len(ANOMALY_TYPES) + 1))
    assert all(TYPE_NAMES[code] == name for name, code in ANOMALY_CODES.items())
