"""The anomaly engine: position, rotation, broken, swapped, missing (paper 3.1). Pure Python."""

from brokenchairs.generation.anomalies.engine import (
    AnomalyFailed,
    AnomalyRecord,
    DonorPool,
    apply_record,
    make_anomaly,
)
from brokenchairs.generation.anomalies.spec import load_spec

__all__ = ["AnomalyFailed", "AnomalyRecord", "DonorPool", "apply_record", "load_spec", "make_anomaly"]
