"""Error root for the hub. Subclasses carry data; messages say what to do."""

from __future__ import annotations


class HubError(Exception):
    """Root of every error raised by lerec.hub."""


class ConfigError(HubError, ValueError):
    """The hub's configuration is invalid or incomplete."""


class StorageError(HubError, OSError):
    """The blob store cannot accept or return an object."""


class StorageFull(StorageError):
    """The blob store has no room left; nothing was stored."""

    def __init__(self, needed: int, free: int) -> None:
        super().__init__(f"storage full: need {needed} bytes, {free} free")
        self.needed = needed
        self.free = free


class IntegrityError(StorageError):
    """A stored object no longer matches its content address."""

    def __init__(self, key: str, actual: str) -> None:
        super().__init__(f"object {key} is corrupt: its content hashes to {actual}")
        self.key = key
        self.actual = actual
