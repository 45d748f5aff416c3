from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from lerec.protocol import EnvelopeError, TopicError, topics
from lerec.protocol.envelope import Opener, Sealer


def test_topics_round_trip():
    t = topics.device_topic("rec-001", "chunk")
    parsed = topics.parse_device_topic(t)
    assert (parsed.device_id, parsed.kind) == ("rec-001", "chunk")
    topics.check_same_device(parsed, "rec-001")
    with pytest.raises(TopicError):
        topics.check_same_device(parsed, "rec-002")


@pytest.mark.parametrize(
    "topic",
    ["lerec/v1/dev/rec-1", "lerec/v1/dev/rec-1/chunk/x", "lerec/v2/dev/rec-1/chunk",
     "lerec/v1/dev/REC/chunk", "lerec/v1/dev/rec-1/receipt", "other/v1/dev/rec-1/chunk",
     "lerec/v1/dev/+/chunk", "lerec/v1/dev/../chunk"],
)
def test_bad_topics(topic):
    with pytest.raises(TopicError):
        topics.parse_device_topic(topic)


def test_shared_subscription_filters():
    assert topics.hub_subscriptions("hubs")[0] == "$share/hubs/lerec/v1/dev/+/manifest"


HUB = X25519PrivateKey.generate()


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5))
def test_seal_open_round_trip(chunks):
    sealer = Sealer(HUB.public_key(), "seg-1")
    opener = Opener(HUB, sealer.encryption, "seg-1")
    last = len(chunks) - 1
    for i, c in enumerate(chunks):
        assert opener.open(i, sealer.seal(i, c, i == last), i == last) == c


def test_tampering_reordering_truncation_and_wrong_key_fail():
    sealer = Sealer(HUB.public_key(), "seg-1")
    opener = Opener(HUB, sealer.encryption, "seg-1")
    c0 = sealer.seal(0, b"first", False)
    c1 = sealer.seal(1, b"last", True)
    with pytest.raises(EnvelopeError):
        opener.open(0, c0[:-1] + bytes([c0[-1] ^ 1]), False)
    with pytest.raises(EnvelopeError):
        opener.open(1, c0, False)  # moved to another index
    with pytest.raises(EnvelopeError):
        opener.open(0, c0, True)  # declared last: truncation
    with pytest.raises(EnvelopeError):
        Opener(HUB, sealer.encryption, "seg-2").open(1, c1, True)  # other segment
    with pytest.raises(EnvelopeError):
        Opener(X25519PrivateKey.generate(), sealer.encryption, "seg-1")
