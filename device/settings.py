"""The recorder's configuration file (TOML): recording settings plus clip store and hub link.

Declared once; unknown keys are rejected; relative paths are relative to the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigurationError
from .media.config import RecorderConfig


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


class DeviceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(description="clip store on the card (sealed segments, journal)")
    recorder: RecorderConfig
    hub: HubLink

    @classmethod
    def load(cls, path: Path) -> "DeviceSettings":
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
