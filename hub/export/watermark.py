"""Visible watermark burned into every video frame (PyAV decode → draw → H.264 re-encode).

The text names the requester and the export time, so a copy that leaks names its source.
Audio is re-encoded to AAC unchanged. A CJK font is used when the system has one; without
one, non-Latin text could not be drawn, so the caller's ASCII fallback line (the user id) is
always drawn as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)


@dataclass(frozen=True)
class Watermarked:
    frames: int
    width: int
    height: int
    lines: tuple[str, ...]
    cjk_font: bool


@lru_cache(maxsize=8)
def _font(size: int, path: str | None) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    for candidate in ([path] if path else []) + list(CJK_FONTS):
        if candidate and Path(candidate).exists():
            return ImageFont.truetype(candidate, size), True
    return ImageFont.load_default(size=size), False


def _drawable(text: str, cjk: bool) -> str:
    return text if cjk or text.isascii() else "".join(c if c.isascii() else "?" for c in text)


def watermark_video(src: Path, dst: Path, lines: list[str], *, font_path: str | None = None,
                    crf: int = 23) -> Watermarked:
    """Re-encode ``src`` (MP4) to ``dst`` with ``lines`` drawn on every frame."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0] if inp.streams.video else None
        ain = inp.streams.audio[0] if inp.streams.audio else None
        if vin is None:
            raise ValueError(f"{src} has no video stream to watermark")
        rate = vin.average_rate or 25
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.options = {"preset": "veryfast", "crf": str(crf)}
        aout = out.add_stream("aac", rate=ain.rate) if ain is not None else None
        size = max(12, vin.height // 18)
        font, cjk = _font(size, font_path)
        shown = tuple(_drawable(t, cjk) for t in lines)
        frames = 0
        overlay: np.ndarray | None = None
        mask: np.ndarray | None = None
        streams = [s for s in (vin, ain) if s is not None]
        for packet in inp.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    img = frame.to_ndarray(format="rgb24")
                    if overlay is None:
                        overlay, mask = _render(img.shape[1], img.shape[0], shown, font, size)
                    np.copyto(img, overlay, where=mask)
                    vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                    vf.pts, vf.time_base = frame.pts, frame.time_base
                    for p in vout.encode(vf):
                        out.mux(p)
                    frames += 1
                elif aout is not None and isinstance(frame, av.AudioFrame):
                    frame.pts = None
                    for p in aout.encode(frame):
                        out.mux(p)
        for p in vout.encode():
            out.mux(p)
        if aout is not None:
            for p in aout.encode():
                out.mux(p)
    return Watermarked(frames, vin.width, vin.height, shown, cjk)


def _render(width: int, height: int, lines: tuple[str, ...],
            font: ImageFont.FreeTypeFont | ImageFont.ImageFont, size: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """The watermark as an RGB image and a boolean mask (white text on a dark band)."""
    layer = Image.new("RGB", (width, height))
    alpha = Image.new("L", (width, height))
    d, da = ImageDraw.Draw(layer), ImageDraw.Draw(alpha)
    pad = max(2, size // 4)
    y: float = pad
    for text in lines:
        box = d.textbbox((pad, y), text, font=font)
        da.rectangle((0, y - 1, min(width, box[2] + pad), box[3] + 1), fill=255)
        d.rectangle((0, y - 1, min(width, box[2] + pad), box[3] + 1), fill=(0, 0, 0))
        d.text((pad, y), text, font=font, fill=(255, 255, 255))
        y = box[3] + pad
    arr = np.asarray(layer)
    mask = np.asarray(alpha)[:, :, None].repeat(3, axis=2) > 0
    return arr, mask
