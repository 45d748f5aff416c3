"""The recorder's configuration file (TOML): recording settings plus clip store and hub link.

Declared once; unknown keys are rejected; relative paths are relative to the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigurationError
from .media.config import RecorderConfig, check_prerecord_seconds, check_segment_seconds


def seal_reserve_bytes(rec: RecorderConfig, headroom: float = 1.5) -> int:
    """Free space the storage floor must keep: two segments at the configured bitrates
    (with ``headroom`` for encoder overshoot), plus 1 MiB for the journal."""
    bits = (rec.video.bitrate if rec.mode == "video" else 0) + (
        rec.audio.bitrate if rec.audio.backend != "none" else 0)
    segment = rec.segment_seconds * bits / 8 * headroom
    return int(2 * segment) + 1024 * 1024


def _floor_problem(rec: RecorderConfig) -> str | None:
    """Why stopping at the floor would leave no room to seal what was recorded, or None."""
    st = rec.storage
    try:
        need = seal_reserve_bytes(rec)
    except OverflowError:
        return f"{rec.segment_seconds:g} s segments are too long to store"
    if 0 < st.floor_bytes < need:
        return (f"recorder.storage.floor_bytes = {st.floor_bytes} leaves no room to seal the "
                f"last segment: {rec.segment_seconds:g} s segments need about {need} "
                "bytes free at the floor; raise floor_bytes (and low_space_bytes) or shorten "
                "segment_seconds")
    return None


class HubLink(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="MQTT broker host of the hub")
    port: int = Field(8883, description="MQTT broker TLS port")
    ca: Path = Field(description="hub CA certificate (trusts the broker)")
    cert: Path = Field(description="this recorder's client certificate (CN = device id)")
    key: Path = Field(description="this recorder's client private key")
    signing_key: Path = Field(description="this recorder's Ed25519 manifest signing key")
    hub_signing_pub: Path = Field(description="hub Ed25519 public key (receipts, config)")
    hub_box_pub: Path = Field(description="hub X25519 public key (segments are sealed to it)")
    heartbeat_seconds: float = Field(30.0, gt=0, description="heartbeat interval")
    chunk_bytes: int = Field(1024 * 1024, ge=1024, le=1024 * 1024, description="upload chunk")
    reply_timeout_seconds: float = Field(15.0, gt=0, description="wait for the hub before retrying")
    max_backoff_seconds: float = Field(
        30.0, gt=0, description="longest (jittered) wait between reconnects or upload retries")


class DeviceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(description="clip store on the card (sealed segments, journal)")
    recorder: RecorderConfig
    hub: HubLink

    @model_validator(mode="after")
    def _floor_leaves_room_to_seal(self) -> DeviceSettings:
        """Stopping at the floor must leave room to seal what was recorded: the segment being
        recorded plus one being sealed at a rollover (sealing writes the encrypted copy before
        deleting the plaintext). A floor of 0 turns the check off (tests, simulation)."""
        problem = _floor_problem(self.recorder)
        if problem is not None:
            raise ValueError(problem)
        return self

    def check_segment_seconds(self, seconds: float) -> float:
        """``seconds`` as a segment length this recorder may use (the hub's config changes it
        at run time), else ValueError: the same rules as for ``recorder.segment_seconds`` in
        the file, i.e. its bound and the card-space check above (longer segments need more
        room at the floor)."""
        seconds = check_segment_seconds(seconds)
        problem = _floor_problem(self.recorder.model_copy(update={"segment_seconds": seconds}))
        if problem is not None:
            raise ValueError(problem)
        return seconds

    def check_prerecord_seconds(self, seconds: float) -> float:
        """``seconds`` as a pre-record length this recorder may use, else ValueError (the
        bounds of ``recorder.prerecord_seconds``)."""
        return check_prerecord_seconds(seconds)

    def recording_lengths(self, segment_seconds: float, prerecord_seconds: float,
                          current: tuple[float, float] | None = None,
                          ) -> tuple[tuple[float, float], list[str]]:
        """The (segment, pre-record) lengths to record with when the hub asks for these:
        each value that passes its check above, else the ``current`` one (default: the
        file's). Returns them and, for every value refused, why (never raises)."""
        seg, pre = current or (self.recorder.segment_seconds, self.recorder.prerecord_seconds)
        problems: list[str] = []
        try:
            seg = self.check_segment_seconds(segment_seconds)
        except ValueError as exc:
            problems.append(str(exc))
        try:
            pre = self.check_prerecord_seconds(prerecord_seconds)
        except ValueError as exc:
            problems.append(str(exc))
        return (seg, pre), problems

    @classmethod
    def load(cls, path: Path) -> DeviceSettings:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigurationError("config", f"{path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError("config", f"{path}: not valid TOML: {exc}") from None
        base = path.resolve().parent

        def fix(p: object) -> object:
            return p if p is None or Path(str(p)).is_absolute() else str(base / str(p))

        data["data_dir"] = fix(data.get("data_dir"))
        for k in ("ca", "cert", "key", "signing_key", "hub_signing_pub", "hub_box_pub"):
            if k in data.get("hub", {}):
                data["hub"][k] = fix(data["hub"][k])
        rec = data.setdefault("recorder", {})
        storage = rec.setdefault("storage", {})
        storage.setdefault("spool_dir", str(Path(str(data["data_dir"])) / "spool"))
        storage["spool_dir"] = fix(storage["spool_dir"])
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError("config", f"{path}: {exc}") from None
