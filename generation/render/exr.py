"""Read the uncompressed scanline OpenEXR files Blender's File Output node writes, with numpy.

Render passes (depth, object index) come back from Blender as EXR files (``blender_scripts.passes``).
Loading them through ``bpy.data.images`` costs ~2.5 ms a file at 256x256 (a datablock, colour
management, RGBA float conversion); an uncompressed single-part scanline file is a header, a table
of line offsets and then, per line, its number, its byte count and each channel's row in turn --
a reshape. Only that layout is read: anything else (compression, tiles, several parts, deep data)
raises ``ValueError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAGIC = b"\x76\x2f\x31\x01"
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}  # UINT, HALF, FLOAT
_TILED, _DEEP, _MULTIPART = 0x200, 0x800, 0x1000  # version flags (long attribute names, 0x400, need nothing)


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode("latin-1"), end + 1


def _header(data: bytes) -> tuple[dict[str, tuple[str, bytes]], int]:
    """Attribute name -> (type, raw value), and the offset just past the header."""
    attrs, at = {}, 8
    while data[at] != 0:  # IndexError past the end: a truncated header
        name, at = _cstring(data, at)
        kind, at = _cstring(data, at)
        size = int.from_bytes(data[at:at + 4], "little")
        attrs[name] = (kind, data[at + 4:at + 4 + size])
        at += 4 + size
    return attrs, at + 1


def _channels(raw: bytes) -> list[tuple[str, np.dtype]]:
    out, at = [], 0
    while raw[at] != 0:
        name, at = _cstring(raw, at)
        pixel_type = int.from_bytes(raw[at:at + 4], "little")
        xs, ys = np.frombuffer(raw[at + 8:at + 16], "<i4")
        if pixel_type not in _PIXEL_TYPES or xs != 1 or ys != 1:
            raise ValueError(f"channel {name!r}: pixel type {pixel_type}, sampling {xs}x{ys} (want 0-2, 1x1)")
        out.append((name, _PIXEL_TYPES[pixel_type]))
        at += 16
    return out


def read_exr(path: str | Path) -> dict[str, np.ndarray]:
    """Channel name -> (H, W) array (row 0 = the top of the image) of an uncompressed scanline EXR."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an OpenEXR file")
    flags = int.from_bytes(data[4:8], "little")
    if flags & (_TILED | _DEEP | _MULTIPART):
        raise ValueError(f"{path}: tiled, deep or multi-part OpenEXR; only single-part scanline files are read")
    try:
        attrs, at = _header(data)
        channels = _channels(attrs["channels"][1])
        compression = attrs["compression"][1][0]
        x0, y0, x1, y1 = (int(v) for v in np.frombuffer(attrs["dataWindow"][1], "<i4"))
    except (IndexError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: truncated or malformed OpenEXR header ({type(exc).__name__}: {exc})") from None
    if compression != 0:
        raise ValueError(f"{path}: compressed OpenEXR (codec {compression}); write it with exr_codec NONE")
    if attrs.get("lineOrder", ("", b"\0"))[1][0] != 0:
        raise ValueError(f"{path}: scanlines not in increasing y order")
    w, h = x1 - x0 + 1, y1 - y0 + 1
    row_bytes = sum(w * dt.itemsize for _, dt in channels)
    start = at + 8 * h  # past the line offset table
    block = 8 + row_bytes  # y (int32), byte count (int32), then each channel's row
    if len(data) < start + h * block:
        raise ValueError(f"{path}: truncated OpenEXR data ({len(data)} bytes, {start + h * block} expected)")
    lines = np.frombuffer(data, np.uint8, h * block, start).reshape(h, block)
    ys = lines[:, :4].copy().view("<i4")[:, 0]
    if not np.array_equal(ys, np.arange(y0, y1 + 1)):
        raise ValueError(f"{path}: scanline blocks out of order (not one line per block)")
    out, col = {}, 8
    for name, dt in channels:
        n = w * dt.itemsize
        out[name] = np.ascontiguousarray(lines[:, col:col + n]).view(dt).reshape(h, w)
        col += n
    return out
