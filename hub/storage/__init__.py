"""Blob storage for recorded segments: one interface, content-addressed and write-once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import BlobStore, parse_ref, ref_for
from .local import LocalBlobStore

if TYPE_CHECKING:
    from ..config import HubConfig, StorageSettings

__all__ = ["BlobStore", "LocalBlobStore", "open_store", "parse_ref", "ref_for", "store_for"]


def open_store(cfg: HubConfig) -> BlobStore:
    """The blob store the config selects. Staging is always ``<storage_dir>/staging``."""
    return store_for(cfg.storage, cfg.storage_dir, cfg.storage_reserve_bytes)


def store_for(storage: StorageSettings | None, storage_dir: Path,
              reserve_bytes: int = 0) -> BlobStore:
    """The blob store of a ``[storage]`` section (None: the local folder ``storage_dir``): the
    hub daemon and the admin service open the same one from the same hub.toml."""
    if storage is not None and storage.backend == "s3":
        from .s3 import S3BlobStore

        s3 = storage.s3
        if s3 is None:
            from ..errors import ConfigError

            raise ConfigError("storage.backend = 's3' needs a [storage.s3] section")
        return S3BlobStore(
            endpoint_url=s3.endpoint_url, bucket=s3.bucket, prefix=s3.prefix, region=s3.region,
            access_key=s3.access_key, secret_key=s3.secret_key,
            staging_dir=Path(storage_dir) / "staging", reserve_bytes=reserve_bytes,
        )
    return LocalBlobStore(Path(storage_dir), reserve_bytes=reserve_bytes)
