"""Renders for tests/render/test_render_determinism.py, in a process of their own bound to one core:
``python render_probe.py OUT.npz MATERIALS CORE TARGET HISTORY...`` renders the work unit TARGET
in a fresh worker, then each HISTORY unit, then TARGET again, and saves TARGET's images twice
(``first/<sample>`` and ``again/<sample>``). The config: 6 procedural chairs of seed 5 at 64x64,
4 spp (the one a busy machine used to change), every type on every shape."""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np

os.sched_setaffinity(0, {int(sys.argv[3])})

from brokenchairs.blender_scripts.query_scene import QueryRenderer  # noqa: E402  (bpy first)
from brokenchairs.generation.anomalies import DonorPool  # noqa: E402
from brokenchairs.generation.pipeline.generate import KINDS, GenerateConfig, plan  # noqa: E402
from brokenchairs.generation.render.materials.library import load_library  # noqa: E402
from brokenchairs.generation.shapes.sources import procedural_refs  # noqa: E402
from brokenchairs.generation.units.procedure import run_unit  # noqa: E402

CONFIG = GenerateConfig(anomalies=KINDS, resolution=64, samples=4, seed=5, shard_size=4, balance="every-shape")


def main(out: str, materials: str, target: str, history: list[str]) -> None:
    cfg = GenerateConfig(**{**asdict(CONFIG), "materials": materials})
    refs = procedural_refs(6, cfg.seed)
    units = {u.unit_id: u for u in plan(Path(out).parent, refs, cfg)[0]}
    settings = cfg.settings(Path(out).parent)
    renderer = QueryRenderer(settings.resolution, settings.samples, "cpu", 1, settings.denoise)  # one warm worker
    library, pool = load_library(settings.materials), DonorPool(refs)

    def render(unit_id: str) -> dict[str, np.ndarray]:
        return {s.sample_id: s.image
                for s, _ in run_unit(units[unit_id], renderer, settings, library, pool, [0.0], Counter())}

    first = render(target)
    for unit_id in history:
        render(unit_id)
    again = render(target)
    np.savez(out, **{f"first/{k}": v for k, v in first.items()}, **{f"again/{k}": v for k, v in again.items()})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[4], sys.argv[5:])
