"""One error tree for the recorder firmware.

Every error raised by ``lerec.device`` derives from :class:`DeviceError`; where a builtin fits,
the subclass is also that builtin (gpiozero style), so ``except ImportError`` still works for a
missing backend. Subclasses carry the data a caller needs to act on the failure.
"""

from __future__ import annotations

from pathlib import Path


class DeviceError(Exception):
    """Root of every error raised by the recorder firmware."""


class BackendUnavailable(DeviceError, ImportError):
    """A hardware backend cannot be loaded on this machine (e.g. picamera2 off a Pi)."""

    def __init__(self, backend: str, hint: str) -> None:
        super().__init__(f"hardware backend {backend!r} is not available here: {hint}")
        self.backend = backend
        self.hint = hint


class ConfigurationError(DeviceError, ValueError):
    """A configuration value cannot be used as given."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"configuration field {field!r}: {reason}")
        self.field = field
        self.reason = reason


class MediaError(DeviceError, RuntimeError):
    """Writing or reading a media file failed."""

    def __init__(self, path: Path | None, reason: str) -> None:
        where = f" ({path})" if path is not None else ""
        super().__init__(f"media error{where}: {reason}")
        self.path = path
        self.reason = reason


class RecoveryError(MediaError):
    """A partial segment left by a power cut could not be turned into a playable file."""


class HardwareError(DeviceError, RuntimeError):
    """A hardware backend failed while running (camera, microphone, GPIO)."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component} failed: {reason}; check the wiring and restart the recorder")
        self.component = component
        self.reason = reason
