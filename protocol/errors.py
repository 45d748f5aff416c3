"""Typed errors for everything the wire format can reject.

Every error carries a short machine-readable ``code`` (used in logs, metrics and the hub's
reject messages) and a human-readable reason. All derive from :class:`ProtocolError`, which is
also a :class:`ValueError`, so callers that do not care about the details can catch either.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Root of every error raised by lerec.protocol."""

    code = "protocol_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DecodeError(ProtocolError):
    """The bytes are not a well-formed, canonically encoded lerec message."""

    code = "undecodable"


class UnsupportedVersion(ProtocolError):
    """The message declares a protocol version this implementation does not speak."""

    code = "unsupported_version"

    def __init__(self, version: object) -> None:
        super().__init__(f"unsupported protocol version {version!r}")
        self.version = version


class SchemaError(ProtocolError):
    """A field is missing, unexpected, of the wrong type or out of range."""

    code = "schema"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field!r}: {reason}")
        self.field = field


class SizeError(ProtocolError):
    """A payload is larger than the protocol allows."""

    code = "oversize"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class SignatureError(ProtocolError):
    """A signature does not verify against the expected key."""

    code = "bad_signature"


class TopicError(ProtocolError):
    """A topic is not one of lerec's, or names a different device than expected."""

    code = "bad_topic"

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"topic {topic!r}: {reason}")
        self.topic = topic


class EnvelopeError(ProtocolError):
    """Encrypted segment data cannot be opened (wrong key, tampered record, bad layout)."""

    code = "bad_envelope"
