"""Software encoders on PyAV: libx264 for the simulated camera, AAC for every microphone.

Both produce what the hardware does on a Pi: H.264 Annex B access units with SPS/PPS repeated
on each keyframe and no B-frames (so pts == dts), and raw AAC-LC frames of 1024 samples.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np

log = logging.getLogger(__name__)

US = Fraction(1, 1_000_000)


class H264Encoder:
    """libx264 through PyAV; ``encode`` takes a YUV420p frame and its pts in microseconds."""

    def __init__(self, width: int, height: int, fps: int, bitrate: int, gop: int,
                 preset: str = "ultrafast") -> None:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height = width, height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = US
        ctx.framerate = Fraction(fps, 1)
        ctx.bit_rate = bitrate
        ctx.gop_size = gop
        ctx.options = {
            "preset": preset, "tune": "zerolatency", "bframes": "0", "keyint_min": str(gop),
            "sc_threshold": "0", "repeat-headers": "1", "threads": "1",
        }
        self._ctx = ctx
        self.width, self.height = width, height

    def encode(self, yuv: np.ndarray, pts_us: int) -> list[tuple[bytes, bool, int]]:
        """Encode one (height*3/2, width) uint8 YUV420p frame; return (data, keyframe, pts)."""
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = pts_us
        frame.time_base = US
        return [(bytes(p), p.is_keyframe, int(p.pts or 0)) for p in self._ctx.encode(frame)]

    def close(self) -> None:
        try:
            self._ctx.encode(None)
        except av.error.FFmpegError:  # flushing a never-used encoder
            pass


class AacEncoder:
    """AAC-LC through FFmpeg's native encoder; takes int16 PCM chunks of any length."""

    FRAME_SAMPLES = 1024

    def __init__(self, sample_rate: int, channels: int, bitrate: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self._layout = "mono" if channels == 1 else "stereo"
        ctx = av.CodecContext.create("aac", "w")
        ctx.sample_rate = sample_rate
        ctx.layout = self._layout
        ctx.format = "fltp"
        ctx.bit_rate = bitrate
        ctx.time_base = Fraction(1, sample_rate)
        ctx.open()
        self._ctx = ctx
        self._resampler = av.AudioResampler(format="fltp", layout=self._layout,
                                            rate=sample_rate, frame_size=self.FRAME_SAMPLES)
        self._samples = 0

    def encode(self, pcm: np.ndarray) -> list[tuple[bytes, int]]:
        """Encode int16 samples shaped (n, channels); return (data, pts in samples) packets.

        The pts counts samples since the first chunk; as usual for AAC the first packet
        starts one frame (1024 samples) early because of the encoder's priming delay.
        """
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm.reshape(1, -1)), format="s16", layout=self._layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self._samples
        self._samples += pcm.shape[0]
        out: list[tuple[bytes, int]] = []
        for rf in self._resampler.resample(frame):
            for p in self._ctx.encode(rf):
                out.append((bytes(p), int(p.pts or 0)))
        return out
