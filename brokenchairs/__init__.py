"""brokenchairs: BrokenChairs-style conditional anomaly-detection datasets and benchmarks.

Import namespaces: ``brokenchairs.generation`` (plain Python: shapes, anomalies, planning),
``brokenchairs.blender_scripts`` (the only code importing bpy), ``brokenchairs.models`` and
``brokenchairs.benchmark``.
"""

__version__ = "0.1.0"
