"""Broken shapes are reported before anyone renders them: `shapes info` / `shapes check` load every
mesh and name each broken shape with its reason (exit 1). `generate --shapes` refusing or skipping
them: tests/render/test_shape_check_generate.py."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from brokenchairs.cli import main
from brokenchairs.generation.shapes.inventory import check_shapes


def test_shapes_info_and_check_name_each_broken_shape_and_exit_1(broken_shapes):
    root, names, broken = broken_shapes
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
