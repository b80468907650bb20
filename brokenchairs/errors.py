"""One error type for bad input: it names the offending file and the problem in one line."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input. The CLI prints ``error: <path>: <problem>`` and exits with code 2."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self):  # survive the trip back from a worker process
        return (InputError, (self.path, self.problem))


def _bounds(low, high) -> str:
    if low is not None and high is not None:
        return f"in {low}..{high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def check_int(option: str, value, low: int | None = None, high: int | None = None,
              source: str | Path | None = None) -> int:
    """``value`` as a whole number within [low, high], or InputError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(source, f"{option} expects a whole number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InputError(source, f"{option} must be {_bounds(low, high)}, got {value}")
    return value


def check_number(option: str, value, low: float | None = None, high: float | None = None,
                 source: str | Path | None = None, exclusive: bool = False) -> float:
    """``value`` as a finite number within [low, high] (open interval when ``exclusive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        raise InputError(source, f"{option} expects a finite number, got {value!r}")
    below = low is not None and (value <= low if exclusive else value < low)
    above = high is not None and (value >= high if exclusive else value > high)
    if below or above:
        if not exclusive:
            where = _bounds(low, high)
        elif low is not None and high is not None:
            where = f"between {low} and {high}, exclusive"
        else:
            where = f"more than {low}" if low is not None else f"less than {high}"
        raise InputError(source, f"{option} must be {where}, got {value}")
    return float(value)


def check_bool(option: str, value, source: str | Path | None = None) -> bool:
    if not isinstance(value, bool):
        raise InputError(source, f"{option} expects true or false, got {value!r}")
    return value
