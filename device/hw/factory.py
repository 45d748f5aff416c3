"""The one place where hardware backends are chosen from config.

Everything returned here is passed into :class:`lerec.device.media.recorder.Recorder`; no
module reaches for a global device or pin factory.
"""

from __future__ import annotations

from gpiozero import Factory
from lerec.device.clock import Clock
from lerec.device.errors import BackendUnavailable
from lerec.device.hw.base import Camera, Microphone
from lerec.device.media.config import RecorderConfig


def make_camera(config: RecorderConfig, clock: Clock) -> Camera | None:
    """The configured camera, or None in audio-only mode."""
    if config.mode == "audio":
        return None
    if config.video.backend == "picamera2":
        from lerec.device.hw.picamera_camera import PicameraCamera
        return PicameraCamera(config.video, clock, config.device_id, config.officer_id)
    from lerec.device.hw.sim_camera import SimCamera
    return SimCamera(config.video, clock, config.device_id, config.officer_id)


def make_microphone(config: RecorderConfig) -> Microphone | None:
    """The configured microphone, or None when audio is off."""
    if config.audio.backend == "none":
        return None
    if config.audio.backend == "pyaudio":
        from lerec.device.hw.pyaudio_mic import PyAudioMicrophone
        return PyAudioMicrophone(config.audio)
    from lerec.device.hw.sim_mic import SimMicrophone
    return SimMicrophone(config.audio)


def make_pin_factory(config: RecorderConfig) -> Factory:
    """gpiozero's MockFactory for simulation, lgpio on the Pi."""
    if config.gpio.pin_factory == "mock":
        from gpiozero.pins.mock import MockFactory
        return MockFactory()
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
        return LGPIOFactory()
    except Exception as exc:   # ImportError, or lgpio failing to open the gpiochip
        raise BackendUnavailable(
            "lgpio", f"{exc}; install python3-lgpio on the Pi or set gpio.pin_factory to "
            "'mock'") from exc
