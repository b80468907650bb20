"""The core install works without the render extra: nothing it imports needs Blender, and a command
that needs Blender says how to install it (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from brokenchairs import extras
from brokenchairs.cli import main

CORE = ["brokenchairs.cli", "brokenchairs.benchmark.train", "brokenchairs.benchmark.evaluate", "brokenchairs.benchmark.report",
        "brokenchairs.benchmark.predict", "brokenchairs.models", "brokenchairs.generation.interop.official",
        "brokenchairs.generation.inspection.stats", "brokenchairs.generation.inspection.validate", "brokenchairs.generation.pipeline.merge",
        "brokenchairs.generation.pipeline.generate", "brokenchairs.generation.shapes.sources"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_core_modules_import_nothing_from_the_render_extra():
    res = _run(f"""
import importlib, json, sys
import trimesh  # it imports manifold3d on its own where installed (an optional boolean backend)
before = set(sys.modules)
for m in {CORE!r}:
    importlib.import_module(m)
print(json.dumps([m for m in {extras.RENDER_MODULES!r} if m in set(sys.modules) - before]))
""")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == []


def test_blender_scripts_without_bpy_names_the_extra():
    res = _run("""
import importlib.abc, sys
class NoBpy(importlib.abc.MetaPathFinder):  # as if the render extra were not installed
    def find_spec(self, name, path=None, target=None):
        if name == "bpy":
            raise ModuleNotFoundError("No module named 'bpy'", name="bpy")
sys.meta_path.insert(0, NoBpy())
import brokenchairs.blender_scripts
""")
    assert res.returncode != 0 and 'pip install "brokenchairs[render]"' in res.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("command", [
    ["generate", "--num-shapes", "1", "--out", "{out}"],
    ["render-views", "--num-shapes", "1", "--out", "{out}"],
    ["shapes", "preview", "{chair}", "--out", "{out}/sheet.png"],
    ["anomalies", "apply", "--shape", "{chair}", "--type", "missing", "--out", "{out}"],
])
def test_a_command_that_needs_blender_names_the_extra(command, tmp_path, synth_dir, monkeypatch):
    # a render module that is surely absent stands for an install without the extra
    monkeypatch.setattr(extras, "RENDER_MODULES", (*extras.RENDER_MODULES, "brokenchairs_absent_render_module"))
    out = tmp_path / "out"
    args = [a.format(out=out, chair=synth_dir / "synth-7-00000") for a in command]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "brokenchairs[render]"' in lines[0] and command[0] in lines[0]
    assert "brokenchairs_absent_render_module" in lines[0]
    assert not out.exists()
