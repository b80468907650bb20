"""Shared fixtures. Real PartNet chairs are read from ../shared/data/partnet-chairs (never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# bpy must load before pymeshlab in one process (both ship libembree4.so.4; whichever loads first
# wins the soname, and bpy needs its newer one). Tests of both kinds share this process.
import brokenchairs.blender_scripts  # noqa: F401,E402

ROOT = Path(__file__).resolve().parents[1]
PARTNET_DIR = Path(os.environ.get("BROKENCHAIRS_PARTNET", ROOT.parent / "shared" / "data" / "partnet-chairs"))


@pytest.fixture(scope="session")
def partnet_dir() -> Path:
    if not PARTNET_DIR.is_dir():
        pytest.fail(f"real PartNet chairs not found at {PARTNET_DIR} (set BROKENCHAIRS_PARTNET)")
    return PARTNET_DIR


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """Fifty procedural chairs written in PartNet layout, shared by the tests of a session."""
    from brokenchairs.generation.procedural import synth_chairs

    out = tmp_path_factory.mktemp("synth")
    list(synth_chairs(50, 7, out))
    return out
