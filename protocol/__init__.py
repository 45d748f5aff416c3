"""lerec wire protocol: pure message formats, canonical encoding, signatures and topics.

No IO and no MQTT/asyncio imports: the recorder and the hub both import this package and
nothing else of each other.
"""

from .codec import Signed, decode_any, decode_message, decode_signed, encode_message, sign_message
from .errors import (
    DecodeError,
    EnvelopeError,
    ProtocolError,
    SchemaError,
    SignatureError,
    SizeError,
    TopicError,
    UnsupportedVersion,
)
from .messages import (
    MAX_CHUNK_BYTES,
    PROTOCOL_VERSION,
    UNASSIGNED,
    ZERO_HASH,
    Chunk,
    ClockInfo,
    DeviceConfig,
    Encryption,
    Heartbeat,
    Message,
    Receipt,
    Reject,
    SegmentManifest,
    Want,
)

__all__ = [
    "MAX_CHUNK_BYTES", "PROTOCOL_VERSION", "UNASSIGNED", "ZERO_HASH",
    "Chunk", "ClockInfo", "DecodeError", "DeviceConfig", "Encryption", "EnvelopeError",
    "Heartbeat", "Message", "ProtocolError", "Receipt", "Reject", "SchemaError",
    "SegmentManifest", "SignatureError", "Signed", "SizeError", "TopicError",
    "UnsupportedVersion", "Want", "decode_any", "decode_message", "decode_signed",
    "encode_message", "sign_message",
]
