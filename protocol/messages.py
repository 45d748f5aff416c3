"""The lerec v1 messages.

Recorder -> hub: :class:`SegmentManifest` (signed by the device), :class:`Chunk`,
:class:`Heartbeat` (signed by the device).
Hub -> recorder: :class:`Want` (which chunks are still missing), :class:`Receipt` (signed by the
hub; the only thing that allows a recorder to delete a segment), :class:`Reject`, and the
retained :class:`DeviceConfig` (signed by the hub: officer binding, time, settings).

Times are integers in milliseconds since the Unix epoch (UTC). Hashes are raw 32-byte SHA-256.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .errors import SchemaError
from .schema import (
    blob,
    boolean,
    identifier,
    integer,
    list_of,
    one_of,
    optional,
    text,
)
from .structs import Struct, spec, struct

#: Wire protocol version carried in every message as ``v``.
PROTOCOL_VERSION = 1

#: Largest chunk payload (plaintext) a recorder may send.
MAX_CHUNK_BYTES = 1024 * 1024
#: AEAD tag added to each encrypted chunk.
AEAD_TAG_BYTES = 16
#: Largest segment the protocol accepts (16 GiB).
MAX_SEGMENT_BYTES = 16 * 1024**3

UNASSIGNED = "unassigned"
ZERO_HASH = bytes(32)

_MS = integer(0, 2**53)
_HASH = blob(32)
_NOTE = text(1000)


class Message(Struct):
    """A top-level message: a struct with a wire type name."""

    TYPE: ClassVar[str]
    SIGNED: ClassVar[bool] = False


@dataclass(frozen=True)
class ClockInfo(Struct):
    """How far the recorder trusts its own clock when it stamped a time."""

    state: str = spec(one_of("synced", "holdover", "unsynced"))
    source: str = spec(text(64))  # e.g. "hub", "ntp", "rtc", "none"
    offset_ms: int = spec(integer(-(2**40), 2**40))  # estimated device minus true time
    uncertainty_ms: int = spec(integer(0, 2**40))

    @property
    def trusted(self) -> bool:
        return self.state != "unsynced"


@dataclass(frozen=True)
class Encryption(Struct):
    """How the chunks of a segment are sealed (see :mod:`lerec.protocol.envelope`)."""

    alg: str = spec(one_of("x25519-hkdf-sha256-chacha20poly1305"))
    epk: bytes = spec(blob(32))  # the recorder's ephemeral X25519 public key for this segment
    recipient: bytes = spec(blob(8))  # first 8 bytes of SHA-256 of the hub's X25519 public key


@dataclass(frozen=True)
class SegmentManifest(Message):
    """Everything the recorder asserts about one recorded segment, signed with its key.

    Fields map to 第二十七条 (制作方法 ``capture_method``, 制作时间 ``start_ms``/``end_ms``,
    制作人 ``producer``, 证明对象 ``object_of_proof``) and to completeness (``seq``,
    ``prev_hash``: SHA-256 of the previous signed manifest of the same device).
    """

    TYPE: ClassVar[str] = "manifest"
    SIGNED: ClassVar[bool] = True

    device_id: str = spec(identifier())
    officer_id: str = spec(identifier())
    segment_id: str = spec(identifier())
    seq: int = spec(integer(0, 2**53))
    prev_hash: bytes = spec(_HASH)
    start_ms: int = spec(_MS)
    end_ms: int = spec(_MS)
    clock: ClockInfo = spec(struct(ClockInfo))
    media_type: str = spec(one_of("video/mp4", "audio/mp4", "image/jpeg", "audio/wav"))
    codecs: tuple[str, ...] = spec(list_of(text(32), 8))
    length: int = spec(integer(0, MAX_SEGMENT_BYTES))
    sha256: bytes = spec(_HASH)
    chunk_size: int = spec(integer(1024, MAX_CHUNK_BYTES))
    capture_method: str = spec(text(128))
    producer: str = spec(text(128))
    object_of_proof: str = spec(_NOTE)
    note: str = spec(_NOTE)
    important: bool = spec(boolean())
    prerecord_ms: int = spec(integer(0, 600_000))
    recovered: bool = spec(boolean())
    encryption: Encryption | None = spec(optional(struct(Encryption)))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.end_ms < self.start_ms:
            raise SchemaError("end_ms", "ends before it starts")

    @property
    def chunk_count(self) -> int:
        return max(1, math.ceil(self.length / self.chunk_size))

    def chunk_plain_length(self, index: int) -> int:
        """Plaintext bytes carried by chunk ``index``."""
        if index == self.chunk_count - 1:
            return self.length - self.chunk_size * index
        return self.chunk_size

    def chunk_wire_length(self, index: int) -> int:
        extra = AEAD_TAG_BYTES if self.encryption is not None else 0
        return self.chunk_plain_length(index) + extra


@dataclass(frozen=True)
class Chunk(Message):
    """One slice of a segment, as stored on the card (ciphertext when encrypted)."""

    TYPE: ClassVar[str] = "chunk"

    device_id: str = spec(identifier())
    segment_id: str = spec(identifier())
    index: int = spec(integer(0, 2**32))
    sha256: bytes = spec(_HASH)  # of ``data``
    # bytes, or a read-only view of the received message when it was decoded in place
    data: bytes | memoryview = spec(blob(max_len=MAX_CHUNK_BYTES + AEAD_TAG_BYTES, view=True))


@dataclass(frozen=True)
class Want(Message):
    """Hub -> recorder: the chunk index ranges ``[start, end)`` the hub still needs."""

    TYPE: ClassVar[str] = "want"

    device_id: str = spec(identifier())
    segment_id: str = spec(identifier())
    missing: tuple[tuple[int, ...], ...] = spec(list_of(list_of(integer(0, 2**32), 2), 4096))


@dataclass(frozen=True)
class Receipt(Message):
    """Hub -> recorder: proof that a segment is verified and durably stored."""

    TYPE: ClassVar[str] = "receipt"
    SIGNED: ClassVar[bool] = True

    hub_id: str = spec(identifier())
    device_id: str = spec(identifier())
    segment_id: str = spec(identifier())
    seq: int = spec(integer(0, 2**53))
    sha256: bytes = spec(_HASH)
    length: int = spec(integer(0, MAX_SEGMENT_BYTES))
    manifest_hash: bytes = spec(_HASH)
    received_ms: int = spec(_MS)
    stored_ref: str = spec(text(128))


@dataclass(frozen=True)
class Reject(Message):
    """Hub -> recorder: a message was refused. ``fatal`` means retrying will not help."""

    TYPE: ClassVar[str] = "reject"

    device_id: str = spec(identifier())
    segment_id: str = spec(text(64))  # empty when the rejected message named no segment
    code: str = spec(text(64))
    reason: str = spec(text(500))
    fatal: bool = spec(boolean())


@dataclass(frozen=True)
class Heartbeat(Message):
    """Recorder -> hub, every few seconds: what the recorder holds and how it is doing."""

    TYPE: ClassVar[str] = "heartbeat"
    SIGNED: ClassVar[bool] = True

    device_id: str = spec(identifier())
    officer_id: str = spec(identifier())
    time_ms: int = spec(_MS)
    state: str = spec(one_of("idle", "recording", "audio_only", "stopped_full", "booting"))
    last_seq: int = spec(integer(-1, 2**53))  # -1: nothing recorded yet
    pending_segments: int = spec(integer(0, 2**32))
    pending_bytes: int = spec(integer(0, 2**53))
    free_bytes: int = spec(integer(0, 2**53))
    storage: str = spec(one_of("ok", "low", "full"))
    clock: ClockInfo = spec(struct(ClockInfo))
    battery_pct: int | None = spec(optional(integer(0, 100)))
    firmware: str = spec(text(64))


@dataclass(frozen=True)
class DeviceConfig(Message):
    """Hub -> recorder, retained: officer binding, hub time and recording settings."""

    TYPE: ClassVar[str] = "config"
    SIGNED: ClassVar[bool] = True

    device_id: str = spec(identifier())
    officer_id: str = spec(identifier())
    config_seq: int = spec(integer(0, 2**53))
    issued_ms: int = spec(_MS)
    segment_seconds: int = spec(integer(10, 4 * 3600))
    prerecord_seconds: int = spec(integer(0, 120))
    heartbeat_seconds: int = spec(integer(1, 3600))
    max_clock_offset_ms: int = spec(integer(0, 2**31))


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (SegmentManifest, Chunk, Want, Receipt, Reject, Heartbeat, DeviceConfig)
}
