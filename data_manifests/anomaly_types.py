"""The anomaly types of paper 3.1 and their codes in query shards: the one place they are written.

``anomaly_type`` in a query shard is the uint8 code of ``ANOMALY_CODES`` (0 = normal). Every
other list of types derives from these: the anomaly spec's sections (``anomaly_spec.json``,
checked by ``generation/anomalies/spec.py``), the CLI's choices, the report's columns, the
metrics' per-type rows. ``table1.json`` holds the paper's counts per type (data, keyed by name).
"""

from __future__ import annotations

ANOMALY_CODES = {"normal": 0, "position": 1, "rotation": 2, "broken": 3, "swapped": 4, "missing": 5}
ANOMALY_TYPES = tuple(k for k in ANOMALY_CODES if k != "normal")  # what the anomaly engine draws
TYPE_NAMES = {code: name for name, code in ANOMALY_CODES.items()}  # code -> name
