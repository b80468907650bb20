"""Load and validate the anomaly spec (data_manifests/anomaly_spec.json or a user file)."""

from __future__ import annotations

import json
from pathlib import Path

from brokenchairs.data_manifests import load_json
from brokenchairs.data_manifests.anomaly_types import ANOMALY_TYPES
from brokenchairs.errors import InputError


def load_spec(path: str | Path | None = None) -> dict:
    """The built-in spec, or the file at ``path`` (validated; errors name the file)."""
    if path is None:
        spec, where = load_json("anomaly_spec.json"), "data_manifests/anomaly_spec.json"
    else:
        where = str(path)
        try:
            spec = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise InputError(path, "spec file does not exist") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(path, f"not valid JSON ({exc})") from exc
    validate_spec(spec, where)
    return spec


def _range(spec: dict, key: str, where: str, lo: float, hi: float) -> None:
    r = spec.get(key)
    if not (isinstance(r, list) and len(r) == 2 and all(isinstance(x, (int, float)) for x in r)):
        raise InputError(where, f"{key} must be a [min, max] pair")
    if not (lo <= r[0] <= r[1] <= hi):
        raise InputError(where, f"{key} {r} out of range: need {lo} <= min <= max <= {hi}")


def _probs(d: dict, key: str, where: str, allowed: set[str]) -> None:
    p = d.get(key)
    if not isinstance(p, dict) or not p or set(p) - allowed or any(not isinstance(v, (int, float)) or v < 0 for v in p.values()) \
            or sum(p.values()) <= 0:
        raise InputError(where, f"{key} must map some of {sorted(allowed)} to non-negative weights")


def _positive(d: dict, key: str, where: str, hi: float = float("inf")) -> None:
    v = d.get(key)
    if not isinstance(v, (int, float)) or not 0 < v <= hi:
        raise InputError(where, f"{key} must be a number in (0, {hi}], got {v!r}")


def validate_spec(spec: dict, where: str) -> None:
    for t in ANOMALY_TYPES + ("perceptibility",):
        if not isinstance(spec.get(t), dict):
            raise InputError(where, f"missing section {t!r}")
    for t in ANOMALY_TYPES:
        labels = spec[t].get("labels")
        if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
            raise InputError(where, f"{t}.labels must be a non-empty list of part labels")
    w = lambda t: f"{where} [{t}]"  # noqa: E731
    _positive(spec["perceptibility"], "min_chamfer", w("perceptibility"), 1.0)
    _positive(spec["perceptibility"], "samples", w("perceptibility"), 1e6)
    _positive(spec["perceptibility"], "max_attempts", w("perceptibility"), 1000)
    _range(spec["position"], "offset", w("position"), 1e-4, 1.0)
    _probs(spec["position"], "modes", w("position"), {"slide", "detach"})
    _range(spec["rotation"], "angle_deg", w("rotation"), 0.1, 180.0)
    _probs(spec["broken"], "primitives", w("broken"), {"sphere", "cube"})
    _range(spec["broken"], "size", w("broken"), 0.01, 2.0)
    _positive(spec["broken"], "min_removed_fraction", w("broken"), 1.0)
    _positive(spec["broken"], "max_removed_fraction", w("broken"), 1.0)
    if spec["broken"]["min_removed_fraction"] > spec["broken"]["max_removed_fraction"]:
        raise InputError(w("broken"), "min_removed_fraction exceeds max_removed_fraction")
    _positive(spec["swapped"], "min_chamfer", w("swapped"), 1.0)
    _positive(spec["missing"], "min_part_size", w("missing"), 2.0)
