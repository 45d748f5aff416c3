"""Microphone -> AAC encoder -> output: turns PCM callbacks into timestamped AAC packets."""

from __future__ import annotations

import logging

import numpy as np
from lerec.device.hw.base import Microphone
from lerec.device.media.codecs import AacEncoder
from lerec.device.media.output import Output

log = logging.getLogger(__name__)


class AudioEncoderStage:
    """Runs the encoder in the microphone's thread and pushes packets with ``audio=True``."""

    def __init__(self, microphone: Microphone, bitrate: int) -> None:
        self._mic = microphone
        self._bitrate = bitrate
        self._encoder: AacEncoder | None = None
        self._output: Output | None = None
        self._anchor_us: int | None = None

    def start(self, output: Output) -> None:
        self._encoder = AacEncoder(self._mic.sample_rate, self._mic.channels, self._bitrate)
        self._output = output
        self._anchor_us = None
        self._mic.start(self._on_pcm)

    def stop(self) -> None:
        self._mic.stop()

    def _on_pcm(self, samples: np.ndarray, mono_us: int) -> None:
        assert self._encoder is not None and self._output is not None
        if self._anchor_us is None:
            self._anchor_us = mono_us
        rate = self._mic.sample_rate
        for data, pts in self._encoder.encode(samples):
            self._output.outputframe(data, True, self._anchor_us + pts * 1_000_000 // rate,
                                     audio=True)
