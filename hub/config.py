"""Hub configuration, declared once. Loaded from a TOML file by the entry points, never at
import time; unknown keys are rejected and every field is described."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError


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


class HubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hub_id: str = Field("hub", description="identifier written into every receipt")
    database_url: str = Field(description="SQLAlchemy URL: sqlite:///path or postgresql://...")
    storage_dir: Path = Field(description="folder of the content-addressed, write-once store")
    storage_reserve_bytes: int = Field(
        256 * 1024 * 1024, description="refuse new segments when free space would drop below"
    )
    signing_key: Path = Field(description="hub Ed25519 key that signs receipts and configs")
    box_key: Path = Field(description="hub X25519 key that opens sealed segments")
    broker: BrokerSettings
    log_level: str = Field("INFO", description="logging level")

    @classmethod
    def load(cls, path: Path) -> "HubConfig":
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        base = Path(path).resolve().parent
        try:
            cfg = cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return cfg.resolved(base)

    def resolved(self, base: Path) -> "HubConfig":
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
                "broker": self.broker.model_copy(
                    update={
                        "ca": fix(self.broker.ca),
                        "cert": fix(self.broker.cert),
                        "key": fix(self.broker.key),
                    }
                ),
            }
        )
