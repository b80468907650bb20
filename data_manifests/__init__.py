"""Package data: taxonomy, anomaly specs, material priors, default configs (JSON files)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def load_json(name: str) -> dict:
    """Read a JSON manifest shipped with the package, e.g. ``load_json("chair_taxonomy.json")``."""
    return json.loads(resources.files(__name__).joinpath(name).read_text())
