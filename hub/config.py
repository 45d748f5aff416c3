"""Hub configuration, declared once. Loaded from a TOML file by the entry points, never at
import time; unknown keys are rejected and every field is described."""

from __future__ import annotations

import datetime as dt
import functools
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

if TYPE_CHECKING:
    from .oversight.settings import OversightSettings


class BrokerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(8883, description="MQTT broker TLS port")
    ca: Path = Field(description="hub CA certificate (trust anchor for the broker)")
    cert: Path = Field(description="the hub's client certificate (CN=hub)")
    key: Path = Field(description="the hub's client private key")
    client_id: str = Field("lerec-hub", description="MQTT client id; persistent session")
    share_group: str | None = Field(
        None, description="MQTT v5 shared-subscription group, for several hub workers"
    )
    max_backoff: float = Field(30.0, description="longest wait between reconnect attempts (s)")


class S3Settings(BaseModel):
    """An S3-compatible object store (SeaweedFS, MinIO, Ceph RGW, AWS S3)."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str = Field(description="e.g. http://127.0.0.1:8333")
    bucket: str = Field(description="bucket for segment objects (created if missing)")
    prefix: str = Field("objects/sha256/", description="key prefix inside the bucket")
    region: str = Field("us-east-1", description="signing region")
    access_key: str | None = Field(None, description="access key id (None: anonymous/env)")
    secret_key: str | None = Field(None, description="secret access key")


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "s3"] = Field(
        "local", description="'local': content-addressed folder in storage_dir; 's3': object "
        "store (staging always stays in storage_dir on the local disk)"
    )
    s3: S3Settings | None = Field(None, description="required when backend = 's3'")


class IngestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk_workers: int = Field(
        1, ge=0, le=16, description="helper processes that check, decrypt and stage chunks "
        "beside the event loop (0: all on the event loop's thread); not used with share_group"
    )


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(
        None, description="serve Prometheus metrics at http://<bind>:<port>/metrics (None: off; "
        "0: pick a free port)"
    )
    bind: str = Field("127.0.0.1", description="address the metrics endpoint listens on")
    refresh_seconds: float = Field(
        30.0, description="how often gap/overdue gauges are recomputed from the database"
    )


class DeviceDefaults(BaseModel):
    """Settings the hub puts into every DeviceConfig it signs."""

    model_config = ConfigDict(extra="forbid")

    segment_seconds: int = Field(300, description="length of one recorded segment")
    prerecord_seconds: int = Field(30, description="pre-event buffer")
    heartbeat_seconds: int = Field(30, description="heartbeat interval")
    max_clock_offset_ms: int = Field(
        3000, description="clock offset beyond which a recorder flags its clock as untrusted"
    )


class AuditSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    origin: str = Field(
        "lerec.local/audit", description="name of the audit log in its signed checkpoints"
    )
    checkpoint_seconds: float = Field(
        300.0, gt=0, description="sign a checkpoint of the audit log this often"
    )


class ArchiveSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path | None = Field(None, description="where archive packages go (default: "
                             "<storage_dir>/archives)")
    number_pattern: str = Field(
        "{org}-{year}-{type}-{seq:04d}", description="archive number scheme (第二十八条)"
    )
    org: str = Field("XXZ", description="organisation code in archive numbers")


class ExportSettings(BaseModel):
    """Exported clips (第二十九条): the C2PA content-credentials signer and the temporary files.

    The admin service offers a party's (or an official's) approved download only as the
    watermarked, C2PA-signed export; without the signer files it explains that export is not
    configured and serves no raw clip to a requester."""

    model_config = ConfigDict(extra="forbid")

    c2pa_cert: Path | None = Field(
        None, description="PEM chain: the hub-CA-issued C2PA signer certificate, then the CA "
        "(lerec-pki init writes pki/hub/c2pa-signer.crt)"
    )
    c2pa_key: Path | None = Field(None, description="the signer's PKCS#8 EC P-256 private key")
    c2pa_ca: Path | None = Field(
        None, description="trust anchor the export is verified against (the hub CA, ca.crt)"
    )
    dir: Path | None = Field(
        None, description="folder for exports waiting to be downloaded (default: "
        "<storage_dir>/exports; emptied when the admin service starts and stops)"
    )
    keep_minutes: int = Field(
        30, ge=1, le=24 * 60, description="how long a prepared export stays downloadable"
    )
    max_files: int = Field(20, ge=1, le=1000, description="prepared exports kept at most")
    workers: int = Field(2, ge=1, le=16, description="exports re-encoded at the same time")


@functools.cache
def months_to_days(months: int) -> int:
    """The longest that ``months`` consecutive calendar months can be, in days (6 -> 184,
    1 July -> 1 January): a period of that many days is at least ``months`` months whatever
    day it starts on (the retention rule of :mod:`lerec.hub.policy.retention`)."""
    longest = 0
    for year in range(2000, 2400):  # one full Gregorian cycle
        for month in range(1, 13):
            end_year, end_month = divmod(month - 1 + months, 12)
            span = dt.date(year + end_year, end_month + 1, 1) - dt.date(year, month, 1)
            longest = max(longest, span.days)
    return longest


class OversightConfig(BaseModel):
    """Upload deadlines (第二十六条) and the retention of recordings (保存期满的音像记录).

    The ingest daemon (``lerec-hub run``) and the admin service (``lerec-admin serve``) both read
    this section of the SAME hub.toml (``--config``), so the retention period the admin's
    保存期满 page applies is the one the hub computes with. The defaults are those of
    :data:`lerec.hub.oversight.settings.DEFAULT_SETTINGS`."""

    model_config = ConfigDict(extra="forbid")

    retention_months: int = Field(
        6, ge=1, le=1200, description="keep a recording linked to no case at least this many "
        "calendar months before its deletion may be requested (counted as the longest such "
        "span: 6 months = 184 days); a recording linked to a case is never deleted"
    )
    retention_days: int | None = Field(
        None, ge=1, le=36600, description="the same period in days, instead of "
        "retention_months (set one of the two)"
    )
    required_approvals: int = Field(
        2, ge=2, le=10, description="different people who must approve each deletion (at "
        "least two)"
    )
    officer_may_approve: bool = Field(
        False, description="whether the officer who recorded a segment may approve its deletion"
    )
    upload_working_days: int = Field(
        2, ge=1, le=30, description="第二十六条: a recording is uploaded within this many "
        "working days"
    )
    at_risk_hours: float = Field(
        24.0, gt=0, le=24 * 30, description="a recording not uploaded with less than this "
        "left before its deadline is reported at risk"
    )
    not_uploaded_grace_hours: float = Field(
        2.0, gt=0, le=24 * 30, description="how long a recording a recorder reported may stay "
        "in transit before a 'reported but not uploaded' alert"
    )
    link_tolerance_minutes: float = Field(
        5.0, ge=0, le=24 * 60, description="automatic linking: a recording may start or end "
        "this much outside a case step's time window"
    )

    @model_validator(mode="after")
    def _one_period(self) -> OversightConfig:
        if self.retention_days is not None and "retention_months" in self.model_fields_set:
            raise ValueError("set either retention_months or retention_days, not both")
        return self

    @property
    def keep_unlinked_for(self) -> dt.timedelta:
        days = self.retention_days if self.retention_days is not None \
            else months_to_days(self.retention_months)
        return dt.timedelta(days=days)

    def settings(self) -> OversightSettings:
        """The :class:`lerec.hub.oversight.settings.OversightSettings` this section means."""
        from .oversight.settings import OversightSettings

        return OversightSettings.model_validate({
            "keep_unlinked_for": self.keep_unlinked_for,
            "required_approvals": self.required_approvals,
            "officer_may_approve": self.officer_may_approve,
            "upload_working_days": self.upload_working_days,
            "at_risk_within": dt.timedelta(hours=self.at_risk_hours),
            "not_uploaded_grace": dt.timedelta(hours=self.not_uploaded_grace_hours),
            "link_tolerance": dt.timedelta(minutes=self.link_tolerance_minutes),
        })


class HubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hub_id: str = Field("hub", description="identifier written into every receipt")
    database_url: str = Field(description="SQLAlchemy URL: sqlite:///path or postgresql://...")
    storage_dir: Path = Field(
        description="local folder: the content-addressed store (backend 'local') and staging"
    )
    storage_reserve_bytes: int = Field(
        256 * 1024 * 1024, description="refuse new segments when free space would drop below"
    )
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="which blob store keeps segments"
    )
    signing_key: Path = Field(description="hub Ed25519 key that signs receipts and configs")
    box_key: Path = Field(description="hub X25519 key that opens sealed segments")
    pki_dir: Path | None = Field(
        None, description="hub CA folder (lerec-pki init): enroll issues certificates from it "
        "and revoke rewrites its CRL and broker ACL"
    )
    broker: BrokerSettings
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="chunk handling")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings, description="Prometheus")
    devices: DeviceDefaults = Field(
        default_factory=DeviceDefaults, description="recording settings pushed to recorders"
    )
    audit: AuditSettings = Field(default_factory=AuditSettings, description="audit log")
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings, description="archives")
    export: ExportSettings = Field(
        default_factory=ExportSettings, description="exported clips (C2PA signer, watermark)"
    )
    oversight: OversightConfig = Field(
        default_factory=OversightConfig, description="upload deadlines and the retention of "
        "recordings (read by both the hub and the admin service)"
    )
    log_level: str = Field("INFO", description="logging level")
    log_format: Literal["text", "json"] = Field(
        "text", description="'json': one JSON object per line (for log shippers)"
    )

    @classmethod
    def load(cls, path: Path) -> HubConfig:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} does not exist (pass --config PATH)"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        base = Path(path).resolve().parent
        try:
            cfg = cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if cfg.storage.backend == "s3" and cfg.storage.s3 is None:
            raise ConfigError(f"{path}: storage.backend = 's3' needs a [storage.s3] section")
        return cfg.resolved(base)

    def resolved(self, base: Path) -> HubConfig:
        """Make relative paths relative to the config file's folder."""

        def fix(p: Path) -> Path:
            return p if p.is_absolute() else (base / p).resolve()

        url = self.database_url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            url = "sqlite:///" + str(fix(Path(url[len("sqlite:///") :])))
        return self.model_copy(
            update={
                "database_url": url,
                "storage_dir": fix(self.storage_dir),
                "signing_key": fix(self.signing_key),
                "box_key": fix(self.box_key),
                "pki_dir": fix(self.pki_dir) if self.pki_dir is not None else None,
                "export": self.export.model_copy(
                    update={
                        k: fix(v)
                        for k, v in self.export.model_dump().items()
                        if k in ("c2pa_cert", "c2pa_key", "c2pa_ca", "dir") and v is not None
                    }
                ),
                "broker": self.broker.model_copy(
                    update={
                        "ca": fix(self.broker.ca),
                        "cert": fix(self.broker.cert),
                        "key": fix(self.broker.key),
                    }
                ),
            }
        )
