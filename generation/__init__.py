"""Plain-Python generation: shapes, procedural chairs, anomalies, cameras, planning, shards."""
