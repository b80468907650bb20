"""Pure render helpers Blender is handed: exact silhouette coverage, the render region, light and
sample presets, EXR reading, sRGB transfer and the material library (plain Python, no bpy)."""
