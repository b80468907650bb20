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
