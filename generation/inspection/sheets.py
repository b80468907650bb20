"""Contact-sheet helpers shared by shape previews and dataset previews (PIL only)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from brokenchairs.shared_folder import write_atomic


def save_grid(tiles: list[Image.Image], out: str | Path, columns: int) -> int:
    """Tile equally sized images row by row onto white and write ``out`` atomically; returns the count."""
    if not tiles:
        raise ValueError("no tiles to draw")
    w, h = tiles[0].size
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * w, (i // columns) * h))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda f: sheet.save(f, format="PNG"))
    return len(tiles)
