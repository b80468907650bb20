"""Shared fixtures: procedural chairs, and the real PartNet chairs (read in place, never copied).

The real chairs' folder is configuration: ``BROKENCHAIRS_PARTNET`` names it; unset, it is
``../shared/data/partnet-chairs`` beside the checkout. Set and missing or incomplete, the tests
that read it fail; unset and absent, they are skipped with one reason.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTNET_ENV = "BROKENCHAIRS_PARTNET"
DEFAULT_PARTNET = ROOT.parent / "shared" / "data" / "partnet-chairs"
# the PartNet chairs (anno ids) the real-chair tests read by name
REAL_CHAIRS = ("2320", "2323", "37614", "37989", "43872", "45075")
SKIPPED = "real PartNet chairs:"


def _partnet_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot serve the real-chair tests, or None."""
    from brokenchairs.generation.shapes.partnet import is_shape_dir

    if not folder.is_dir():
        return "no such folder"
    missing = [a for a in REAL_CHAIRS if not (is_shape_dir(folder / a) and (folder / a / "objs").is_dir())]
    return f"no PartNet chair folder (result*.json and objs/) for {', '.join(missing)}" if missing else None


@pytest.fixture(scope="session")
def partnet_dir() -> Path:
    configured = os.environ.get(PARTNET_ENV)
    folder = Path(configured) if configured else DEFAULT_PARTNET
    if not configured and not folder.exists():
        pytest.skip(f"{SKIPPED} nothing at {folder}; to run these tests, set {PARTNET_ENV} to a folder holding "
                    f"PartNet's data_v0/<anno_id>/ folders {', '.join(REAL_CHAIRS)}")
    problem = _partnet_problem(folder)
    if problem:
        source = f"{PARTNET_ENV}={configured}" if configured else f"the default {folder}"
        pytest.fail(f"real PartNet chairs: {source}: {problem}", pytrace=False)
    return folder


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """Fifty procedural chairs written in PartNet layout, shared by the tests of a session."""
    from brokenchairs.generation.shapes.procedural import synth_chairs

    out = tmp_path_factory.mktemp("synth")
    list(synth_chairs(50, 7, out))
    return out


def pytest_terminal_summary(terminalreporter) -> None:
    """Name the tests skipped for want of the real chairs, in one place, with how to run them."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if isinstance(r.longrepr, tuple) and r.longrepr[2].startswith(f"Skipped: {SKIPPED}")]
    if skipped:
        terminalreporter.section(f"{len(skipped)} real-chair tests skipped")
        terminalreporter.line(skipped[0].longrepr[2].removeprefix("Skipped: "))
        for r in skipped:
            terminalreporter.line(f"  {r.nodeid}")


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
def broken_shapes(synth_dir, tmp_path):
    """Six chairs (PartNet layout), four of them broken in one way each; a stray folder without a tree."""
    root = tmp_path / "shapes"
    root.mkdir()
    names = sorted(p.name for p in synth_dir.iterdir())[:6]
    for n in names:
        shutil.copytree(synth_dir / n, root / n)
    broken = {names[i]: _break(root / names[i], how) for i, how in enumerate(("missing", "empty", "nan", "faceless"))}
    (root / "stray" / "objs").mkdir(parents=True)
    return root, names, broken
