"""Settings of the query renders (no bpy): light presets and sample counts.

The light presets live here, not in blender_scripts, because plain Python draws a unit's light
(``light_id``) and geometry needs them too; ``blender_scripts/query_scene.py`` builds them.
"""

from __future__ import annotations

GROUND_SCALE = 4  # the ground/shadow pass renders at 1/4 resolution (1/16 of the pixels)
GROUND_SAMPLES = 3  # denoised; at 2 spp the ground is visibly blotchier (-0.3 dB on its pixels, chair pixels unchanged) for -0.012 CPU-s
OBJECT_SAMPLES = 8  # the default of `generate --samples`; with the exact silhouette coverage 8 spp match the 11 of before (perf/bench_render.py)

# (type, position, power or strength, size: area side in m or sun angle in degrees)
LIGHT_PRESETS = [
    {"name": "studio", "world": 0.55, "lights": [("AREA", (-1.6, -2.2, 3.0), 260.0, 2.5), ("AREA", (2.5, 1.0, 2.0), 80.0, 2.0)]},
    {"name": "overhead", "world": 0.6, "lights": [("AREA", (0.2, -0.3, 3.2), 300.0, 3.0)]},
    {"name": "sun", "world": 0.5, "lights": [("SUN", (-0.6, -0.9, 1.4), 2.6, 12.0)]},
    {"name": "window", "world": 0.45, "lights": [("AREA", (-3.0, -0.5, 2.2), 380.0, 2.5), ("AREA", (0.0, 0.0, 3.5), 60.0, 3.0)]},
]
