"""Minimal OpenEXR reader for the renderer's own files (numpy only).

Reads scan-line files written without compression (``exr_codec = 'NONE'``), single- or
multi-layer, HALF / FLOAT / UINT channels: exactly what :mod:`core.scenegen.room_render`
writes. Anything else (tiles, compression, deep data) raises ``ValueError``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

__all__ = ["read_exr"]

_MAGIC = 20000630
_DTYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


def _read_attrs(buf: bytes, pos: int) -> Tuple[Dict[str, Tuple[str, bytes]], int]:
    attrs: Dict[str, Tuple[str, bytes]] = {}
    while True:
        end = buf.index(b"\0", pos)
        name = buf[pos:end].decode()
        pos = end + 1
        if not name:
            return attrs, pos
        end = buf.index(b"\0", pos)
        typ = buf[pos:end].decode()
        pos = end + 1
        (size,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        attrs[name] = (typ, buf[pos:pos + size])
        pos += size


def _read_headers(buf: bytes):
    magic, version = struct.unpack_from("<ii", buf, 0)
    if magic != _MAGIC:
        raise ValueError("not an OpenEXR file")
    if version & 0x200:
        raise ValueError("tiled OpenEXR files are not supported")
    if version & 0x800:
        raise ValueError("deep OpenEXR files are not supported")
    multipart = bool(version & 0x1000)
    pos = 8
    headers = []
    while True:
        attrs, pos = _read_attrs(buf, pos)
        headers.append(attrs)
        if not multipart:
            break
        if buf[pos] == 0:  # empty header = end of the header list
            pos += 1
            break
    return headers, pos, multipart


def _channels(data: bytes):
    out = []
    pos = 0
    while data[pos] != 0:
        end = data.index(b"\0", pos)
        name = data[pos:end].decode()
        pos = end + 1
        ptype, _plin, xs, ys = struct.unpack_from("<iB3xii", data, pos)
        pos += 16
        if xs != 1 or ys != 1:
            raise ValueError("sub-sampled channels are not supported")
        out.append((name, ptype))
    return out


def read_exr(path: Union[str, Path]) -> Dict[str, np.ndarray]:
    """``{channel name: (H, W) array}`` (float16 / float32 / uint32 as stored), all parts."""
    buf = Path(path).read_bytes()
    headers, pos, multipart = _read_headers(buf)
    out: Dict[str, np.ndarray] = {}
    tables = []
    for attrs in headers:
        xmin, ymin, xmax, ymax = struct.unpack("<iiii", attrs["dataWindow"][1])
        H = ymax - ymin + 1
        n = struct.unpack("<i", attrs["chunkCount"][1])[0] if "chunkCount" in attrs else H
        tables.append(np.frombuffer(buf, "<u8", count=n, offset=pos))
        pos += 8 * n
    for attrs, offsets in zip(headers, tables):
        comp = attrs["compression"][1][0]
        if comp != 0:
            raise ValueError(f"compressed OpenEXR (compression={comp}) is not supported: write with exr_codec='NONE'")
        if "type" in attrs and not attrs["type"][1].startswith(b"scanlineimage"):
            raise ValueError("only scan-line parts are supported")
        xmin, ymin, xmax, ymax = struct.unpack("<iiii", attrs["dataWindow"][1])
        W, H = xmax - xmin + 1, ymax - ymin + 1
        chans = _channels(attrs["channels"][1])  # stored sorted by name
        row_dtype = np.dtype([(f"c{i}", _DTYPES[t], (W,)) for i, (_, t) in enumerate(chans)])
        part = {name: np.empty((H, W), _DTYPES[t]) for name, t in chans}
        head = 12 if multipart else 8
        for o in offsets:
            o = int(o) + (4 if multipart else 0)
            y, size = struct.unpack_from("<ii", buf, o)
            if size != row_dtype.itemsize:
                raise ValueError("unexpected scan-line block size (one line per block expected)")
            row = np.frombuffer(buf, row_dtype, count=1, offset=o + 8)[0]
            for i, (name, _) in enumerate(chans):
                part[name][y - ymin] = row[f"c{i}"]
        del head
        out.update(part)
    return out
