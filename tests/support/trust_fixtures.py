"""Fixtures of the trust tests (tests/hub/{verify,access,archive,export} import them all): a
migrated database per test (support.databases: a SQLite file in tmp_path, or, when
LEREC_TEST_DATABASE_URL is set, a PostgreSQL database) copied from a template migrated once per
session, the tamperer's view of it, stored and receipted evidence, a case made of it."""

from __future__ import annotations

import pytest
from lerec.hub.db import make_engine, sessionmaker

from .databases import database, databases


@pytest.fixture(scope="session")
def migrated_dbs(tmp_path_factory):
    yield from databases(tmp_path_factory)


@pytest.fixture
def db_url(migrated_dbs, tmp_path):
    yield from database(migrated_dbs, tmp_path)


@pytest.fixture
async def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine):
    return sessionmaker(engine)


class Tamper:
    """Changes made outside the application: the tamperer's view of the database."""

    def __init__(self, engine) -> None:
        self.engine = engine

    async def sql(self, *statements: str) -> None:
        async with self.engine.begin() as conn:
            for stmt in statements:
                await conn.exec_driver_sql(stmt)

    async def scalar(self, statement: str):
        async with self.engine.connect() as conn:
            return (await conn.exec_driver_sql(statement)).scalar()

    def blob(self, data: bytes) -> str:
        if self.engine.dialect.name == "sqlite":
            return f"x'{data.hex()}'"
        return f"'\\x{data.hex()}'::bytea"

    def drop_audit_triggers(self) -> list[str]:
        if self.engine.dialect.name == "postgresql":
            return [
                "DROP TRIGGER IF EXISTS audit_entries_no_change ON audit_entries",
                "DROP TRIGGER IF EXISTS audit_nodes_no_change ON audit_nodes",
                "DROP TRIGGER IF EXISTS audit_checkpoints_no_change ON audit_checkpoints",
                "DROP TRIGGER IF EXISTS audit_entries_next_only ON audit_entries",
            ]
        return [f"DROP TRIGGER IF EXISTS {t}" for t in (
            "audit_entries_no_update", "audit_entries_no_delete", "audit_entries_next_only",
            "audit_nodes_no_update", "audit_nodes_no_delete", "audit_checkpoints_no_update",
            "audit_checkpoints_no_delete")]


@pytest.fixture
def tamper(engine) -> Tamper:
    return Tamper(engine)


# --- Evidence: enrolled devices and stored, receipted segments, made directly ------------------

import datetime as dt
import hashlib
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lerec.hub.audit.entries import EventType
from lerec.hub.audit.log import record_event
from lerec.hub.db import Device, Segment
from lerec.hub.db.types import from_ms
from lerec.hub.storage import LocalBlobStore
from lerec.protocol import ClockInfo, Receipt, SegmentManifest, sign_message
from lerec.protocol.keys import raw_public

T0 = 1_780_000_000_000  # 2026-05-28, ms


class Evidence:
    """Enrolled recorders and receipted segments, written as the ingest daemon writes them."""

    def __init__(self, sessions, store: LocalBlobStore) -> None:
        self.sessions = sessions
        self.store = store
        self.hub_key = Ed25519PrivateKey.generate()
        self.device_keys: dict[str, Ed25519PrivateKey] = {}
        self.last: dict[str, tuple[int, bytes]] = {}

    async def device(self, device_id: str) -> Ed25519PrivateKey:
        if device_id not in self.device_keys:
            key = self.device_keys[device_id] = Ed25519PrivateKey.generate()
            async with self.sessions() as s, s.begin():
                s.add(Device(device_id=device_id, signing_key=raw_public(key.public_key()),
                             officer_id="officer-1"))
        return self.device_keys[device_id]

    async def segment(self, device_id: str, data: bytes, *, media_type: str = "video/mp4",
                      seq: int | None = None, start_ms: int | None = None,
                      codecs: tuple[str, ...] = ("avc1", "mp4a")) -> Segment:
        key = await self.device(device_id)
        last_seq, last_hash = self.last.get(device_id, (-1, bytes(32)))
        seq = last_seq + 1 if seq is None else seq
        start = start_ms if start_ms is not None else T0 + seq * 60_000
        digest = hashlib.sha256(data).digest()
        m = SegmentManifest(
            device_id=device_id, officer_id="officer-1", segment_id=f"{device_id}-{seq:06d}",
            seq=seq, prev_hash=last_hash, start_ms=start, end_ms=start + 5000,
            clock=ClockInfo("synced", "hub", 0, 10), media_type=media_type, codecs=codecs,
            length=len(data), sha256=digest, chunk_size=65536, capture_method="执法记录仪 录像",
            producer="officer-1", object_of_proof="现场检查", note="", important=False,
            prerecord_ms=0, recovered=False, encryption=None,
        )
        wire = sign_message(m, key)
        mhash = hashlib.sha256(wire).digest()
        with tempfile.NamedTemporaryFile(dir=self.store.staging_dir, delete=False) as f:
            f.write(data)
        ref = await self.store.put_file(Path(f.name), digest.hex(), len(data))
        receipt = sign_message(Receipt(
            hub_id="hub", device_id=device_id, segment_id=m.segment_id, seq=seq, sha256=digest,
            length=len(data), manifest_hash=mhash, received_ms=start + 60_000, stored_ref=ref,
        ), self.hub_key)
        row = Segment(
            segment_id=m.segment_id, device_id=device_id, seq=seq, officer_id=m.officer_id,
            start_at=from_ms(m.start_ms), end_at=from_ms(m.end_ms), media_type=media_type,
            length=len(data), sha256=digest.hex(), important=False, recovered=False,
            clock_state="synced", clock_offset_ms=0, prev_hash=m.prev_hash, manifest=wire,
            manifest_hash=mhash, receipt=receipt, stored_ref=ref,
            received_at=from_ms(start + 60_000),
        )
        async with self.sessions() as s, s.begin():
            s.add(row)
            await s.flush()
            subjects = (f"segment:{m.segment_id}", f"device:{device_id}")
            await record_event(s, EventType.SEGMENT_INGESTED, f"device:{device_id}", subjects, {
                "seq": seq, "sha256": digest.hex(), "length": len(data), "stored_ref": ref,
                "manifest_hash": mhash.hex(), "officer_id": m.officer_id, "important": False,
                "recovered": False, "clock": "synced"},
                at=dt.datetime.fromtimestamp((start + 60_000) / 1000, dt.UTC))
        self.last[device_id] = (seq, mhash)
        return row


@pytest.fixture
def store(tmp_path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "store")


@pytest.fixture
def evidence(sessions, store) -> Evidence:
    return Evidence(sessions, store)


def make_mp4(path: Path, seconds: float = 1.0, size: tuple[int, int] = (160, 120)) -> Path:
    """A small real H.264 + AAC MP4 (PyAV)."""
    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        v.options = {"preset": "ultrafast"}
        a = out.add_stream("aac", rate=16000)
        frames = int(seconds * 10)
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (i * 20) % 255, dtype=np.uint8)
            for pkt in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        samples = int(seconds * 16000)
        t = np.arange(samples) / 16000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
        for off in range(0, samples, 1024):
            chunk = tone[:, off:off + 1024]
            if chunk.shape[1] < 1024:
                break
            fr = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            fr.sample_rate = 16000
            for pkt in a.encode(fr):
                out.mux(pkt)
        for pkt in a.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="session")
def mp4_bytes(tmp_path_factory) -> bytes:
    return make_mp4(tmp_path_factory.mktemp("media") / "clip.mp4").read_bytes()


# --- A case with records, segments (two recorders, one gap), a transcript and audit entries ---

async def _make_case(evidence, mp4_bytes, case_id="C-2026-017"):
    from lerec.hub.archive import Attachment, CaseFile, LinkedSegment, Transcript
    from lerec.hub.audit import log as audit

    segs = [await evidence.segment("rec-a", mp4_bytes),
            await evidence.segment("rec-a", mp4_bytes + b"\0"),
            await evidence.segment("rec-a", mp4_bytes + b"\0\0", seq=4),  # 2, 3 elsewhere
            await evidence.segment("rec-b", mp4_bytes + b"\1")]
    async with evidence.sessions() as s, s.begin():
        extra = await audit.record_event(s, EventType.RECORD_CREATED, "user:li",
                                         [f"case:{case_id}"], {"kind": "立案审批表"})
        await audit.record_event(s, EventType.LINK, "user:li",
                                 [f"case:{case_id}", f"segment:{segs[0].segment_id}"])
        await audit.record_event(s, EventType.VIEW, "user:zhang", ["case:OTHER"])
    case = CaseFile(
        case_id=case_id,
        metadata={"title": "某餐馆占道经营案", "case_type": "行政处罚", "org": "新乡镇"},
        records=[{"id": "R1", "kind": "立案审批表", "at": "2026-05-02", "summary": "立案"},
                 {"id": "R2", "kind": "现场检查笔录", "at": "2026-05-03", "summary": "检查"}],
        execution_ended_at=dt.date(2026, 6, 1),
        attachments=[Attachment("notice.txt", "text/plain", data="处罚决定书".encode())],
        segments=[LinkedSegment(s.segment_id, s.manifest, s.receipt, s.stored_ref, "R2")
                  for s in segs],
        transcripts=[Transcript(segs[0].segment_id, "执法人员：请出示营业执照。", "user:li")],
        audit_indices=[extra],
        confidentiality=["个人隐私"],
    )
    return case, segs


@pytest.fixture
def make_case():
    return _make_case


ARCHIVE_NOW = dt.datetime(2026, 6, 20, 3, 0, tzinfo=dt.UTC)


class RemoteLikeStore:
    """A BlobStore without local paths (as S3 is): only the protocol's methods."""

    def __init__(self, inner: LocalBlobStore) -> None:
        self._inner = inner
        self.staging_dir = inner.staging_dir

    async def put_file(self, path, sha256_hex, length):
        return await self._inner.put_file(path, sha256_hex, length)

    def check_space(self, needed):
        self._inner.check_space(needed)

    async def exists(self, ref):
        return await self._inner.exists(ref)

    async def size(self, ref):
        return await self._inner.size(ref)

    def read_range(self, ref, start=0, end=None):
        return self._inner.read_range(ref, start, end)

    async def verify(self, ref):
        await self._inner.verify(ref)


@pytest.fixture
def remote_store(store) -> RemoteLikeStore:
    return RemoteLikeStore(store)
