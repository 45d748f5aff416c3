"""The recorder's SQLite journal: which segments are sealed, pending, receipted or refused,
and the head of the manifest hash chain. Every state change is one transaction, so the journal
is consistent after a power cut at any point."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    seq INTEGER PRIMARY KEY,
    segment_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'receipted', 'refused')),
    important INTEGER NOT NULL,
    manifest BLOB NOT NULL,
    manifest_hash BLOB NOT NULL,
    wire_path TEXT NOT NULL,
    wire_length INTEGER NOT NULL,
    sealed_at REAL NOT NULL,
    receipt BLOB,
    refused_code TEXT,
    refused_reason TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB);
"""


@dataclass(frozen=True)
class JournalRow:
    seq: int
    segment_id: str
    state: str
    important: bool
    manifest: bytes
    manifest_hash: bytes
    wire_path: Path
    wire_length: int
    refused_code: str | None = None


class Journal:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def head(self) -> tuple[int, bytes | None]:
        """Next sequence number and the digest of the last manifest (None before the first)."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, manifest_hash FROM segments ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return (0, None) if row is None else (row[0] + 1, row[1])

    def add(self, row: JournalRow) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO segments (seq, segment_id, state, important, manifest, "
                "manifest_hash, wire_path, wire_length, sealed_at) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, strftime('%s','now'))",
                (row.seq, row.segment_id, int(row.important), row.manifest, row.manifest_hash,
                 str(row.wire_path), row.wire_length),
            )

    def _rows(self, where: str, args: tuple[object, ...] = ()) -> list[JournalRow]:
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, segment_id, state, important, manifest, manifest_hash, wire_path, "
                f"wire_length, refused_code FROM segments WHERE {where}", args
            )
            return [
                JournalRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], Path(r[6]), r[7], r[8])
                for r in cur.fetchall()
            ]

    def pending(self) -> list[JournalRow]:
        """Segments still to upload: important first, then oldest first."""
        return self._rows("state = 'pending' ORDER BY important DESC, seq ASC")

    def refused(self) -> list[JournalRow]:
        return self._rows("state = 'refused' ORDER BY seq")

    def get(self, seq: int) -> JournalRow | None:
        rows = self._rows("seq = ?", (seq,))
        return rows[0] if rows else None

    def by_segment_id(self, segment_id: str) -> JournalRow | None:
        rows = self._rows("segment_id = ?", (segment_id,))
        return rows[0] if rows else None

    def known_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT segment_id FROM segments")}

    def mark_receipted(self, seq: int, receipt: bytes) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE segments SET state = 'receipted', receipt = ? WHERE seq = ? "
                "AND state != 'receipted'",
                (receipt, seq),
            )

    def mark_refused(self, seq: int, code: str, reason: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE segments SET state = 'refused', refused_code = ?, refused_reason = ? "
                "WHERE seq = ? AND state = 'pending'",
                (code, reason, seq),
            )

    def set_important(self, seq: int) -> None:
        with self._lock:
            self._db.execute("UPDATE segments SET important = 1 WHERE seq = ?", (seq,))

    def set_meta(self, key: str, value: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (key, value))

    def get_meta(self, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def counts(self) -> dict[str, int]:
        """Rows per state ('pending', 'receipted', 'refused')."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM segments GROUP BY state")
            return {state: int(n) for state, n in rows.fetchall()}

    def refusal(self, seq: int) -> tuple[str, str] | None:
        """(code, reason) the hub gave when it refused segment ``seq``."""
        with self._lock:
            row = self._db.execute(
                "SELECT refused_code, refused_reason FROM segments WHERE seq = ? AND "
                "state = 'refused'", (seq,)).fetchone()
        return None if row is None else (row[0], row[1])

    def pending_bytes(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(wire_length), 0) FROM segments WHERE state = 'pending'"
            ).fetchone()
        return int(row[0])
