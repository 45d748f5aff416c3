"""Microphone through PyAudio (PortAudio). The only module importing pyaudio, lazily."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from lerec.device.errors import BackendUnavailable, HardwareError
from lerec.device.hw.base import AudioCallback
from lerec.device.media.config import AudioConfig
from lerec.device.media.output import monotonic_us

log = logging.getLogger(__name__)


class PyAudioMicrophone:
    """Implements :class:`lerec.device.hw.base.Microphone` on a real input device."""

    def __init__(self, config: AudioConfig) -> None:
        try:
            import pyaudio
        except ImportError as exc:
            raise BackendUnavailable(
                "pyaudio", "install portaudio19-dev and `pip install pyaudio`") from exc
        self._pyaudio = pyaudio
        self.sample_rate = config.sample_rate
        self.channels = config.channels
        self._config = config
        self._pa: Any = None
        self._stream: Any = None

    def start(self, callback: AudioCallback) -> None:
        pyaudio = self._pyaudio
        chunk = self.sample_rate * self._config.chunk_ms // 1000

        def on_audio(in_data: bytes, frame_count: int, _time_info: Any,
                     status: int) -> tuple[None, int]:
            if status:
                log.warning("audio input status flags %#x (overflow?)", status)
            mono = monotonic_us() - frame_count * 1_000_000 // self.sample_rate
            samples = np.frombuffer(in_data, dtype="<i2").reshape(-1, self.channels)
            callback(samples, mono)
            return None, pyaudio.paContinue

        try:
            self._pa = pyaudio.PyAudio()
            self._stream = self._pa.open(
                format=pyaudio.paInt16, channels=self.channels, rate=self.sample_rate,
                input=True, frames_per_buffer=chunk,
                input_device_index=self._config.device_index, stream_callback=on_audio)
            self._stream.start_stream()
        except OSError as exc:
            raise HardwareError("microphone", str(exc)) from exc

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop_stream()
            self._stream.close()
            self._stream = None
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None
