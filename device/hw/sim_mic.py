"""Simulated microphone: a tone or a looped 16-bit WAV file, paced in real time."""

from __future__ import annotations

import logging
import threading
import time
import wave
from pathlib import Path

import numpy as np
from lerec.device.errors import HardwareError
from lerec.device.hw.base import AudioCallback
from lerec.device.media.config import AudioConfig
from lerec.device.media.output import monotonic_us

log = logging.getLogger(__name__)


def _load_wav(path: Path, channels: int, sample_rate: int) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise HardwareError("simulated microphone", f"{path} is not 16-bit PCM")
        if w.getframerate() != sample_rate or w.getnchannels() != channels:
            raise HardwareError(
                "simulated microphone",
                f"{path} is {w.getframerate()} Hz x{w.getnchannels()}, "
                f"config wants {sample_rate} Hz x{channels}")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if data.size == 0:
        raise HardwareError("simulated microphone", f"{path} holds no samples")
    return data.reshape(-1, channels).astype(np.int16)


class SimMicrophone:
    """Implements :class:`lerec.device.hw.base.Microphone` without hardware."""

    def __init__(self, config: AudioConfig) -> None:
        self.sample_rate = config.sample_rate
        self.channels = config.channels
        self._config = config
        self._chunk = config.sample_rate * config.chunk_ms // 1000
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wav = (_load_wav(config.wav_file, config.channels, config.sample_rate)
                     if config.wav_file else None)

    def _samples(self, start: int) -> np.ndarray:
        n = self._chunk
        if self._wav is not None:
            idx = (np.arange(start, start + n) % self._wav.shape[0])
            return np.asarray(self._wav[idx], dtype=np.int16)
        t = np.arange(start, start + n) / self.sample_rate
        mono = (np.sin(2 * np.pi * self._config.tone_hz * t) * 6000).astype(np.int16)
        return np.repeat(mono[:, None], self.channels, axis=1)

    def start(self, callback: AudioCallback) -> None:
        if self._thread is not None:
            raise HardwareError("simulated microphone", "already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(callback,),
                                        name="lerec-sim-mic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, callback: AudioCallback) -> None:
        t0 = time.monotonic()
        mono0 = monotonic_us()
        sent = 0
        while not self._stopping.is_set():
            # a chunk is delivered once it has been "captured", i.e. at its end time
            due = t0 + (sent + self._chunk) / self.sample_rate
            delay = due - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                break
            callback(self._samples(sent), mono0 + sent * 1_000_000 // self.sample_rate)
            sent += self._chunk
