"""`generate --shapes` refuses broken shapes (one line naming them and --skip-broken), or leaves
them out with --skip-broken, printing and recording each one. The broken shapes come from the
`broken_shapes` fixture (tests/conftest.py), which tests/test_shape_check.py also reads."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from brokenchairs.cli import main

pytestmark = pytest.mark.blender


def test_generate_refuses_broken_shapes_or_skips_them_by_choice(broken_shapes, tmp_path):
    root, names, broken = broken_shapes
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
