"""Settings of the admin service, declared once; built by ``__main__`` from hub.toml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..oversight.settings import DEFAULT_SETTINGS, OversightSettings

if TYPE_CHECKING:
    from ..config import StorageSettings


@dataclass(frozen=True)
class AdminSettings:
    database_url: str
    storage_dir: Path
    #: the hub.toml ``[storage]`` section: the blob store the clips are in (None: the local
    #: folder ``storage_dir``; with ``backend = "s3"`` the admin plays, archives, exports and
    #: deletes objects in the same bucket the hub stores them in)
    storage: StorageSettings | None = None
    #: send the session cookie with the Secure flag (only turn off for plain-HTTP development)
    cookie_secure: bool = True
    #: idle-independent lifetime of a logged-in session
    session_hours: int = 12
    #: largest attachment accepted (bytes)
    max_upload_bytes: int = 512 * 1024 * 1024
    #: a rulebook YAML other than the built-in 新乡府发〔2024〕52号
    rulebook_path: Path | None = None
    #: failed logins per user name before a temporary lock, and the lock time
    login_attempts: int = 5
    login_lock_minutes: int = 15
    #: how often the background task re-evaluates time-dependent findings (0: never)
    refresh_minutes: int = 60
    #: run Alembic migrations at start
    migrate: bool = True
    #: hub Ed25519 key: with it, archiving a case also builds its signed BagIt package
    signing_key: Path | None = None
    #: where archive packages go (default: <storage_dir>/archives)
    archive_dir: Path | None = None
    #: audit log name in checkpoints (must match the hub's)
    audit_origin: str = "lerec.local/audit"
    #: C2PA content-credentials signer of exported clips (第二十九条): the PEM chain (signer
    #: certificate issued by the hub CA, then the CA), its private key, and the trust anchor
    #: the export is verified against. Without them a requester's download is refused with an
    #: explanation (never the raw clip).
    c2pa_cert: Path | None = None
    c2pa_key: Path | None = None
    c2pa_ca: Path | None = None
    #: prepared exports waiting to be downloaded (default: <storage_dir>/exports)
    export_dir: Path | None = None
    #: a prepared export stays downloadable this long, and at most this many are kept
    export_keep_minutes: int = 30
    export_max_files: int = 20
    #: exports re-encoded at the same time (each takes a CPU core while it runs)
    export_workers: int = 2
    #: font for the watermark (default: the first CJK font found on the system)
    export_font: str | None = None
    #: retention of recordings (保存期满的音像记录) and upload deadlines: the ``[oversight]``
    #: section of hub.toml (``HubConfig.oversight.settings()``), the same the ingest daemon
    #: uses, so that the 保存期满 page applies the hub's retention period and approvals
    oversight: OversightSettings = DEFAULT_SETTINGS
