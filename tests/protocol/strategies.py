"""Hypothesis strategies producing valid lerec messages."""

from __future__ import annotations

from hypothesis import strategies as st

from lerec.protocol import (
    Chunk,
    ClockInfo,
    DeviceConfig,
    Encryption,
    Heartbeat,
    Receipt,
    Reject,
    SegmentManifest,
    Want,
)

ids = st.from_regex(r"\A[a-z0-9][a-z0-9._-]{0,20}\Z")
hashes = st.binary(min_size=32, max_size=32)
ms = st.integers(0, 2**53)
small = st.integers(0, 2**31)
texts = st.text(max_size=40).filter(lambda s: "\x00" not in s)

clocks = st.builds(
    ClockInfo,
    state=st.sampled_from(["synced", "holdover", "unsynced"]),
    source=st.sampled_from(["hub", "ntp", "rtc", "none"]),
    offset_ms=st.integers(-(10**9), 10**9),
    uncertainty_ms=st.integers(0, 10**9),
)
encryptions = st.none() | st.builds(
    Encryption,
    alg=st.just("x25519-hkdf-sha256-chacha20poly1305"),
    epk=hashes,
    recipient=st.binary(min_size=8, max_size=8),
)


@st.composite
def manifests(draw: st.DrawFn) -> SegmentManifest:
    start = draw(st.integers(0, 2**52))
    return SegmentManifest(
        device_id=draw(ids),
        officer_id=draw(ids),
        segment_id=draw(ids),
        seq=draw(small),
        prev_hash=draw(hashes),
        start_ms=start,
        end_ms=start + draw(st.integers(0, 10**7)),
        clock=draw(clocks),
        media_type=draw(st.sampled_from(["video/mp4", "audio/mp4"])),
        codecs=tuple(draw(st.lists(st.sampled_from(["avc1", "mp4a", "opus"]), max_size=3))),
        length=draw(st.integers(0, 2**34)),
        sha256=draw(hashes),
        chunk_size=draw(st.integers(1024, 1024 * 1024)),
        capture_method=draw(texts),
        producer=draw(texts),
        object_of_proof=draw(texts),
        note=draw(texts),
        important=draw(st.booleans()),
        prerecord_ms=draw(st.integers(0, 600_000)),
        recovered=draw(st.booleans()),
        encryption=draw(encryptions),
    )


chunks = st.builds(
    Chunk, device_id=ids, segment_id=ids, index=small, sha256=hashes,
    data=st.binary(max_size=2048),
)
wants = st.builds(
    Want, device_id=ids, segment_id=ids,
    missing=st.lists(st.tuples(small, small), max_size=5).map(tuple),
)
receipts = st.builds(
    Receipt, hub_id=ids, device_id=ids, segment_id=ids, seq=small, sha256=hashes,
    length=st.integers(0, 2**34), manifest_hash=hashes, received_ms=ms, stored_ref=ids,
)
rejects = st.builds(
    Reject, device_id=ids, segment_id=ids, code=ids, reason=texts, fatal=st.booleans()
)
heartbeats = st.builds(
    Heartbeat, device_id=ids, officer_id=ids, time_ms=ms,
    state=st.sampled_from(["idle", "recording", "audio_only", "stopped_full", "booting"]),
    last_seq=st.integers(-1, 2**40), pending_segments=small, pending_bytes=ms, free_bytes=ms,
    storage=st.sampled_from(["ok", "low", "full"]), clock=clocks,
    battery_pct=st.none() | st.integers(0, 100), firmware=texts,
)
configs = st.builds(
    DeviceConfig, device_id=ids, officer_id=ids, config_seq=small, issued_ms=ms,
    segment_seconds=st.integers(10, 4 * 3600), prerecord_seconds=st.integers(0, 120),
    heartbeat_seconds=st.integers(1, 3600), max_clock_offset_ms=st.integers(0, 2**31),
)

unsigned_messages = st.one_of(chunks, wants, rejects)
signed_messages = st.one_of(manifests(), receipts, heartbeats, configs)
