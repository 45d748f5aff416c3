"""Recorder configuration, declared once (pydantic, unknown keys rejected, every field described).

Loaded by the entry point, never at import time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Bounds of the recording lengths, from the config file and from the hub's config alike.
PRERECORD_MAX_SECONDS = 120.0
SEGMENT_MIN_SECONDS = 1.0


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def check_segment_seconds(seconds: float) -> float:
    """``seconds`` as a segment length, or ValueError (the bound of ``segment_seconds``)."""
    if not (_number(seconds) and seconds >= SEGMENT_MIN_SECONDS):
        raise ValueError(f"segment length {seconds!r} s: must be a finite number of at least "
                         f"{SEGMENT_MIN_SECONDS:g} s")
    return float(seconds)


def check_prerecord_seconds(seconds: float) -> float:
    """``seconds`` as a pre-record length, or ValueError (the bounds of ``prerecord_seconds``)."""
    if not (_number(seconds) and 0 <= seconds <= PRERECORD_MAX_SECONDS):
        raise ValueError(f"pre-record length {seconds!r} s: must be between 0 and "
                         f"{PRERECORD_MAX_SECONDS:g} s")
    return float(seconds)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VideoConfig(_Model):
    backend: Literal["sim", "picamera2"] = Field(
        "sim", description="Camera backend: 'sim' (PyAV/libx264 test pattern or file) or "
        "'picamera2' (Raspberry Pi camera with the hardware H.264 encoder).")
    width: int = Field(640, ge=64, le=3840, multiple_of=2, description="Frame width in pixels.")
    height: int = Field(360, ge=64, le=2160, multiple_of=2,
                        description="Frame height in pixels.")
    fps: int = Field(15, ge=1, le=60, description="Frames per second.")
    bitrate: int = Field(1_000_000, ge=50_000, description="Target H.264 bitrate in bit/s.")
    keyframe_interval_seconds: float = Field(
        1.0, gt=0, le=10, description="Seconds between keyframes; also the fMP4 fragment "
        "length, hence the most a power cut can lose.")
    preset: str = Field("ultrafast", description="libx264 preset for the simulated camera.")
    source_file: Path | None = Field(
        None, description="Simulated camera only: loop this video file instead of drawing a "
        "synthetic test pattern.")
    osd_timezone: str | None = Field(
        None, description="IANA zone for the burned-in local time (e.g. 'Asia/Shanghai'); "
        "None uses the system's local zone.")

    @property
    def gop(self) -> int:
        """Frames per GOP."""
        return max(1, round(self.fps * self.keyframe_interval_seconds))


class AudioConfig(_Model):
    backend: Literal["sim", "pyaudio", "none"] = Field(
        "sim", description="Microphone backend: 'sim' (tone or WAV file), 'pyaudio' (a real "
        "input device) or 'none' (video without sound).")
    sample_rate: int = Field(48_000, description="Samples per second.")
    channels: Literal[1, 2] = Field(1, description="1 = mono, 2 = stereo.")
    bitrate: int = Field(64_000, ge=16_000, description="AAC bitrate in bit/s.")
    chunk_ms: int = Field(20, ge=5, le=200, description="Capture chunk length in milliseconds.")
    tone_hz: float = Field(440.0, gt=0, description="Simulated microphone: tone frequency.")
    wav_file: Path | None = Field(
        None, description="Simulated microphone: loop this 16-bit PCM WAV file instead of a tone.")
    device_index: int | None = Field(
        None, description="PyAudio input device index; None uses the default input.")


class GpioConfig(_Model):
    """BCM pin numbers; see ``lerec.device.controls.WIRING`` for the wiring table."""

    pin_factory: Literal["native", "mock"] = Field(
        "native", description="'native' uses gpiozero's default for the Pi (lgpio); 'mock' "
        "uses gpiozero's MockFactory (simulation and tests).")
    record_button: int = Field(17, description="BCM pin of the record button (to GND).")
    mark_button: int = Field(27, description="BCM pin of the mark-important button (to GND).")
    power_led: int = Field(5, description="BCM pin of the green power LED.")
    video_led: int = Field(6, description="BCM pin of the red video-recording LED.")
    audio_led: int = Field(13, description="BCM pin of the yellow audio-only LED.")
    buzzer: int = Field(19, description="BCM pin of the active buzzer.")
    long_press_seconds: float = Field(
        2.0, gt=0, description="Holding record this long marks the segment important.")
    bounce_seconds: float | None = Field(
        None, description="Button debounce time; None disables debouncing.")


class StorageConfig(_Model):
    spool_dir: Path = Field(description="Folder where segments are written ('.part' while "
                            "recording) and handed to the clip store.")
    low_space_bytes: int = Field(2_000_000_000, ge=0,
                                 description="Below this much free space, warn (beep, blink).")
    floor_bytes: int = Field(200_000_000, ge=0,
                             description="Below this much free space, stop recording.")
    check_interval_seconds: float = Field(5.0, gt=0,
                                          description="How often free space is checked.")
    fsync_every_fragment: bool = Field(
        True, description="fsync the file after each fragment so a power cut loses at most one.")

    @model_validator(mode="after")
    def _floor_below_low(self) -> StorageConfig:
        if self.floor_bytes > self.low_space_bytes:
            raise ValueError("floor_bytes must not exceed low_space_bytes")
        return self


class RecorderConfig(_Model):
    device_id: str = Field(min_length=1, max_length=64,
                           description="Device serial, burned into every frame.")
    officer_id: str = Field("", max_length=64,
                            description="Officer bound to the device by the hub; burned in.")
    mode: Literal["video", "audio"] = Field(
        "video", description="'video' records video and sound; 'audio' records sound only.")
    prerecord_seconds: float = Field(
        30.0, ge=0, le=PRERECORD_MAX_SECONDS, allow_inf_nan=False,
        description="Seconds kept before a press (GOP-aligned). The hub's config overrides it.")
    segment_seconds: float = Field(
        300.0, ge=SEGMENT_MIN_SECONDS, allow_inf_nan=False,
        description="Length of each segment file (it closes at the first keyframe at or after "
        "this length). The hub's config overrides it.")
    video: VideoConfig = Field(default_factory=VideoConfig, description="Camera settings.")
    audio: AudioConfig = Field(default_factory=AudioConfig, description="Microphone settings.")
    gpio: GpioConfig = Field(default_factory=GpioConfig, description="Buttons, LEDs, buzzer.")
    storage: StorageConfig = Field(description="Spool folder and free-space thresholds.")
    clock_check_seconds: float = Field(2.0, gt=0,
                                       description="How often the clock sync state is read.")
