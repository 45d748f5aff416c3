"""An S3-compatible object store (SeaweedFS, MinIO, Ceph RGW, AWS S3) as content-addressed,
write-once storage.

Keys are ``<prefix><2 hex>/<2 hex>/<64 hex>`` of the SHA-256 of the content. An object is never
overwritten: :meth:`put_file` first asks whether the key exists, then uploads with
``If-None-Match: *`` (the store refuses the write if the key appeared meanwhile) and with the
SHA-256 checksum of the body so the store itself verifies what it received; afterwards the
object's size is checked. Staging stays on the local disk (``staging_dir``); the bucket only
ever receives complete, verified segments. boto3 is synchronous, so calls run in threads.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..errors import IntegrityError, StorageError, StorageFull
from .base import parse_ref, ref_for

log = logging.getLogger(__name__)

READ_BLOCK = 1024 * 1024
SINGLE_PUT_LIMIT = 5 * 1024**3  # S3 refuses a single PUT above 5 GiB


class S3BlobStore:
    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        staging_dir: Path,
        prefix: str = "objects/sha256/",
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        reserve_bytes: int = 0,
        client: Any = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.staging_dir = Path(staging_dir)
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self.reserve_bytes = reserve_bytes
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            aws_access_key_id=access_key or "any", aws_secret_access_key=secret_key or "any",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5,
                                                                    "mode": "standard"},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"),
        )
        self._bucket_ready = False
        self._lock = threading.Lock()

    # -- helpers -----------------------------------------------------------------------------

    def key_for(self, ref: str) -> str:
        h = parse_ref(ref)
        return f"{self.prefix}{h[:2]}/{h[2:4]}/{h}"

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        from botocore.exceptions import ClientError

        with self._lock:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError:
                try:
                    self.client.create_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise StorageError(f"cannot create bucket {self.bucket}: {exc}") from exc
            self._bucket_ready = True

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)  # type: ignore[no-any-return]
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise StorageError(f"object store error on {key}: {exc}") from exc

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.staging_dir).free

    def check_space(self, needed: int) -> None:
        """Staging is local: a segment needs room there until it is uploaded."""
        free = self.free_bytes()
        if free - needed < self.reserve_bytes:
            raise StorageFull(needed, free)

    # -- write once --------------------------------------------------------------------------

    def _put(self, path: Path, sha256_hex: str, length: int) -> str:
        from botocore.exceptions import ClientError

        self._ensure_bucket()
        ref = ref_for(sha256_hex)
        key = self.key_for(ref)
        size = os.path.getsize(path)
        if size != length:
            raise StorageError(f"{path} has {size} bytes, expected {length}")
        existing = self._head(key)
        if existing is None:
            try:
                if length <= SINGLE_PUT_LIMIT:
                    with open(path, "rb") as body:
                        self.client.put_object(
                            Bucket=self.bucket, Key=key, Body=body, ContentLength=length,
                            IfNoneMatch="*", ChecksumSHA256=_b64(sha256_hex),
                            Metadata={"sha256": sha256_hex},
                            ContentType="application/octet-stream",
                        )
                else:  # multipart; the HEAD above is the write-once guard
                    self.client.upload_file(str(path), self.bucket, key,
                                            ExtraArgs={"Metadata": {"sha256": sha256_hex}})
            except ClientError as exc:
                if _code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise StorageError(f"upload of {ref} to {self.bucket} failed: {exc}") from exc
                log.info("object %s appeared meanwhile; kept the existing one", ref)
            existing = self._head(key)
            if existing is None:
                raise StorageError(f"object {ref} is missing right after its upload")
        if int(existing["ContentLength"]) != length:
            raise IntegrityError(ref, f"a different size ({existing['ContentLength']} bytes)")
        stored_hash = existing.get("Metadata", {}).get("sha256")
        if stored_hash is not None and stored_hash != sha256_hex:
            raise IntegrityError(ref, stored_hash)
        os.unlink(path)
        return ref

    async def put_file(self, path: Path, sha256_hex: str, length: int) -> str:
        return await asyncio.to_thread(self._put, Path(path), sha256_hex, length)

    # -- read --------------------------------------------------------------------------------

    async def exists(self, ref: str) -> bool:
        await asyncio.to_thread(self._ensure_bucket)
        return await asyncio.to_thread(self._head, self.key_for(ref)) is not None

    async def size(self, ref: str) -> int:
        head = await asyncio.to_thread(self._head, self.key_for(ref))
        if head is None:
            raise FileNotFoundError(ref)
        return int(head["ContentLength"])

    async def read_range(
        self, ref: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        rng = f"bytes={start}-" + ("" if end is None else str(end - 1))
        resp = await asyncio.to_thread(
            self.client.get_object, Bucket=self.bucket, Key=self.key_for(ref), Range=rng
        )
        body = resp["Body"]
        try:
            while block := await asyncio.to_thread(body.read, READ_BLOCK):
                yield block
        finally:
            body.close()

    async def delete(self, ref: str) -> None:
        # DeleteObject is idempotent in S3: an absent key is not an error.
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket,
                                Key=self.key_for(ref))

    async def verify(self, ref: str) -> None:
        h = hashlib.sha256()
        async for block in self.read_range(ref):
            h.update(block)
        if h.hexdigest() != parse_ref(ref):
            raise IntegrityError(ref, h.hexdigest())


def _b64(sha256_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
