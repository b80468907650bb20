"""One work unit of ``generate`` (and one shard of ``render-views``) in plain Python.

What a worker is handed (``tasks``: units, tasks and the settings they render with), the scene of
a unit decided before Blender is touched (``scene``: shape or variant, part indices, materials,
light, cameras), the quality control applied to its renders (``quality``), the samples and
manifest lines it yields (``samples``), and the whole unit run against any renderer with the
``procedure.UnitRenderer`` methods (``procedure``). ``blender_scripts`` hands that procedure a
Blender renderer and imports nothing from the run layer (``generation.pipeline``).
"""
