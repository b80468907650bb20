"""Broken shapes are reported before anyone renders them: `shapes info` / `shapes check` load every
mesh and name each broken shape with its reason (exit 1); `generate --shapes` refuses them, or
leaves them out with --skip-broken, printing and recording each one."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from brokenchairs.cli import main
from brokenchairs.generation.inventory import check_shapes

pytestmark = pytest.mark.blender


def _leaf_obj(folder):
    node = json.loads((folder / "result_after_merging.json").read_text())[0]
    while node.get("children"):
        node = node["children"][0]
    return folder / "objs" / f"{node['objs'][0]}.obj"


def _break(folder, how: str) -> tuple[str, str]:
    obj = _leaf_obj(folder)
    text = obj.read_text()
    if how == "missing":
        obj.unlink()
    elif how == "empty":
        obj.write_text("")
    elif how == "nan":
        lines = text.splitlines()
        obj.write_text("\n".join(["v nan 0 0", *lines[1:]]))
    elif how == "faceless":
        obj.write_text("".join(line + "\n" for line in text.splitlines() if line.startswith("v ")))
    reasons = {"missing": "mesh file is missing", "empty": "mesh file is empty", "nan": "NaN or infinite",
               "faceless": "mesh has no faces"}
    return str(obj), reasons[how]


@pytest.fixture()
def shapes(synth_dir, tmp_path):
    """Six chairs (PartNet layout), four of them broken in one way each; a stray folder without a tree."""
    root = tmp_path / "shapes"
    root.mkdir()
    names = sorted(p.name for p in synth_dir.iterdir())[:6]
    for n in names:
        shutil.copytree(synth_dir / n, root / n)
    broken = {names[i]: _break(root / names[i], how) for i, how in enumerate(("missing", "empty", "nan", "faceless"))}
    (root / "stray" / "objs").mkdir(parents=True)
    return root, names, broken


def test_shapes_info_and_check_name_each_broken_shape_and_exit_1(shapes):
    root, names, broken = shapes
    for cmd in (["shapes", "info", str(root), "--workers", "2"], ["shapes", "check", str(root)]):
        res = CliRunner().invoke(main, cmd)
        assert res.exit_code == 1, res.output + res.stderr
        lines = [line.strip() for line in res.output.splitlines()]
        for name, (obj, reason) in broken.items():  # one line per broken shape: the shape, the file, the problem
            assert sum(line.startswith(f"{root / name}: {obj}: ") and reason in line for line in lines) == 1, (name, lines)
        assert any(line.startswith(f"{root / 'stray'}: missing result_after_merging.json") for line in lines)
        assert not any(names[4] in line or names[5] in line for line in lines)  # healthy shapes are not listed
    dirs = sorted(p for p in root.iterdir() if p.name != "stray")
    assert check_shapes(dirs, workers=2, pool_from=1) == check_shapes(dirs) and len(check_shapes(dirs)) == 4
    res = CliRunner().invoke(main, ["shapes", "info", str(root), "--json"])
    report = json.loads(res.output)
    assert res.exit_code == 1 and len(report["broken"]) == 5 and report["shapes"] == 6
    healthy = root.parent / "healthy"
    shutil.copytree(root / names[4], healthy / names[4])
    res = CliRunner().invoke(main, ["shapes", "check", str(healthy)])
    assert res.exit_code == 0 and "1 shapes checked, 0 broken" in res.output


def test_generate_refuses_broken_shapes_or_skips_them_by_choice(shapes, tmp_path):
    root, names, broken = shapes
    args = ["generate", "--shapes", str(root), "--anomaly", "normal", "--views-per-variant", "1", "--resolution", "16",
            "--samples", "1", "--workers", "1"]
    out = tmp_path / "refused"
    res = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "4 broken shape(s)" in res.stderr and "--skip-broken" in res.stderr and names[0] in res.stderr
    assert not out.exists()
    out = tmp_path / "skipped"
    res = CliRunner().invoke(main, [*args, "--out", str(out), "--skip-broken"])
    assert res.exit_code == 0, res.output + res.stderr + repr(res.exception)
    for name, (obj, reason) in broken.items():
        assert f"skipping broken shape {name}: {obj}: " in res.stderr and reason in res.stderr
    meta = json.loads((out / "dataset.json").read_text())
    assert [s["shape_id"] for s in meta["shapes"]] == names[4:]
    assert sorted(s["shape_id"] for s in meta["shapes_skipped"]) == sorted(broken)
    ids = {json.loads(line)["shape_id"] for line in (out / "manifest.jsonl").read_text().splitlines()}
    assert ids == set(names[4:])
    # an array member joining this folder trusts the recorded check, and says what it leaves out
    res = CliRunner().invoke(main, [*args, "--out", str(out), "--skip-broken"])
    assert res.exit_code == 0 and res.stderr.count("skipping broken shape") == 4
    res = CliRunner().invoke(main, [*args, "--out", str(out)])  # without the choice: refused, as before
    assert res.exit_code == 2 and "--skip-broken" in res.stderr
