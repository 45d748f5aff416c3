"""On-screen display burned into every frame, drawn on the luma (Y) plane.

Two parts: a text line (local time to the millisecond, frame counter, device id, officer id)
for people, and a row of black/white blocks encoding the capture time in milliseconds since
the Unix epoch for machines (tests, and later integrity checks, decode it from a decoded
frame with :func:`decode_time_blocks`).

Used by both the simulated camera and the picamera2 backend (on the YUV420 main stream).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_BITS = 48          # milliseconds since 1970 fit in 41 bits
_CHECK_BITS = 8
_MARKER = (1, 0)    # a white then a black block start the row
_BLOCKS = len(_MARKER) + _BITS + _CHECK_BITS
_BLOCK_H = 16
_WHITE, _BLACK = 235, 16


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _block_geometry(width: int, height: int) -> tuple[int, int]:
    """(block width, top row) of the time block row; aligned to 16-pixel macroblocks."""
    bw = max(2, width // (_BLOCKS + 6))
    top = (height // _BLOCK_H - 1) * _BLOCK_H
    return bw, top


def _checksum(ms: int) -> int:
    return sum(ms.to_bytes(6, "big")) & 0xFF


def draw_time_blocks(y: np.ndarray, ms: int) -> None:
    """Burn ``ms`` (epoch milliseconds) into the luma plane ``y`` (rows x cols, uint8)."""
    height, width = y.shape
    bw, top = _block_geometry(width, height)
    bits = list(_MARKER)
    bits += [(ms >> (_BITS - 1 - i)) & 1 for i in range(_BITS)]
    check = _checksum(ms)
    bits += [(check >> (_CHECK_BITS - 1 - i)) & 1 for i in range(_CHECK_BITS)]
    row = np.repeat(np.array(bits, dtype=np.uint8) * (_WHITE - _BLACK) + _BLACK, bw)
    y[top:top + _BLOCK_H, : row.size] = row


def decode_time_blocks(y: np.ndarray) -> int | None:
    """Read back the epoch milliseconds burned by :func:`draw_time_blocks`, or None."""
    height, width = y.shape
    bw, top = _block_geometry(width, height)
    band = y[top + 4: top + _BLOCK_H - 4, : bw * _BLOCKS].astype(np.float32)
    lo, hi = bw // 4, bw - bw // 4
    cells = band.reshape(band.shape[0], _BLOCKS, bw)[:, :, lo:max(hi, lo + 1)]
    bits = (cells.mean(axis=(0, 2)) > (_WHITE + _BLACK) / 2).astype(int).tolist()
    if tuple(bits[: len(_MARKER)]) != _MARKER:
        return None
    value = 0
    for b in bits[len(_MARKER): len(_MARKER) + _BITS]:
        value = (value << 1) | b
    check = 0
    for b in bits[len(_MARKER) + _BITS:]:
        check = (check << 1) | b
    return value if check == _checksum(value) else None


def osd_text(when: datetime, tz: tzinfo | None, frame_no: int, device_id: str,
             officer_id: str) -> str:
    """The human-readable OSD line."""
    local = when.astimezone(tz)
    stamp = local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    offset = local.strftime("%z")
    return (f"{stamp} {offset[:3]}:{offset[3:]}  #{frame_no:07d}  "
            f"DEV {device_id}  OFC {officer_id or '-'}")


def draw_osd(y: np.ndarray, when: datetime, tz: tzinfo | None, frame_no: int,
             device_id: str, officer_id: str) -> None:
    """Burn text and time blocks into the luma plane ``y`` (modified in place)."""
    height, width = y.shape
    size = max(10, height // 24)
    band_h = size + 6
    text = osd_text(when, tz, frame_no, device_id, officer_id)
    img = Image.new("L", (width, band_h), _BLACK)
    ImageDraw.Draw(img).text((4, 2), text, fill=_WHITE, font=_font(size))
    y[:band_h, :] = np.asarray(img)
    ms = int(when.timestamp() * 1000)
    draw_time_blocks(y, ms)
