"""The optional part of the install, and the check a command makes before it needs it.

The core (``pip install brokenchairs``) reads and writes shards, converts the official release,
plans, trains, scores and reports. Rendering (Blender as the ``bpy`` module) and the anomaly
engine (boolean fractures, mesh repair) come with the ``render`` extra of pyproject.toml, which
alone brings bpy 5.0.1's limits: Python 3.11 and numpy 1.x.
"""

from __future__ import annotations

import importlib.util

from brokenchairs.errors import InputError

RENDER_INSTALL = 'pip install "brokenchairs[render]"'
# the import names of what the render extra installs that code imports (pyproject.toml lists the packages)
RENDER_MODULES = ("bpy", "manifold3d", "pymeshlab", "numba")


def missing_render_modules() -> list[str]:
    """The render extra's modules that are not installed (found without importing them)."""
    return [m for m in RENDER_MODULES if importlib.util.find_spec(m) is None]


def require_render(command: str) -> None:
    """Raise InputError (the CLI: one line, exit code 2) before ``command`` writes anything, if the
    render extra is not installed."""
    missing = missing_render_modules()
    if missing:
        raise InputError(None, f"{command} needs the render extra (Blender and the anomaly engine; {', '.join(missing)} "
                               f"not installed): {RENDER_INSTALL} (Python 3.11)")
