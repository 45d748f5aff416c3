"""The S3 blob store against a real SeaweedFS: content-addressed, write-once, verified."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import pytest
from lerec.hub.errors import IntegrityError, StorageError
from lerec.hub.storage import LocalBlobStore, ref_for
from lerec.hub.storage.s3 import S3BlobStore

BUCKET = "lerec-test"  # one bucket (each SeaweedFS bucket is a collection with its own volumes)


def make_store(endpoint: str, tmp_path, prefix: str | None = None) -> S3BlobStore:
    return S3BlobStore(endpoint_url=endpoint, bucket=BUCKET, staging_dir=tmp_path / "staging",
                       prefix=prefix or f"t{os.urandom(4).hex()}/")


async def wait_ready(store: S3BlobStore, timeout: float = 30) -> None:
    """SeaweedFS accepts connections a little before it can allocate volumes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await store.exists(ref_for("00" * 32))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def staged(store, data: bytes):
    p = store.staging_dir / os.urandom(4).hex()
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("kind", ["local", "s3"])
async def test_put_read_verify_and_write_once(kind, seaweed, tmp_path):
    store = make_store(seaweed, tmp_path) if kind == "s3" else LocalBlobStore(tmp_path / "l")
    if kind == "s3":
        await wait_ready(store)
    data = os.urandom(3 * 1024 * 1024 + 17)
    path, h = staged(store, data)
    ref = await store.put_file(path, h, len(data))
    assert ref == "sha256:" + h
    assert not path.exists(), "the staged file is consumed"
    assert await store.exists(ref)
    assert await store.size(ref) == len(data)
    got = b"".join([b async for b in store.read_range(ref)])
    assert got == data
    part = b"".join([b async for b in store.read_range(ref, 1000, 5000)])
    assert part == data[1000:5000]
    await store.verify(ref)

    # Same content again: idempotent, same reference, object untouched.
    path2, _ = staged(store, data)
    assert await store.put_file(path2, h, len(data)) == ref
    # A different body under the same address is never written over the original.
    forged = os.urandom(len(data))
    path3, _ = staged(store, forged)
    assert await store.put_file(path3, h, len(data)) == ref
    assert b"".join([b async for b in store.read_range(ref)]) == data
    assert not await store.exists(ref_for("ab" * 32))


async def test_s3_rejects_a_wrong_hash_and_detects_corruption(seaweed, tmp_path):
    store = make_store(seaweed, tmp_path)
    await wait_ready(store)
    data = os.urandom(100_000)
    path, _ = staged(store, data)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(StorageError, match="failed"):
        # The store checks the SHA-256 of the body it receives against the claimed address.
        await store.put_file(path, wrong, len(data))
    assert not await store.exists(ref_for(wrong))

    # Corrupt an object behind the hub's back (bypassing the write-once path): verify catches it.
    good, h = staged(store, data)
    ref = await store.put_file(good, h, len(data))
    key = store.key_for(ref)
    await asyncio.to_thread(store.client.delete_object, Bucket=store.bucket, Key=key)
    await asyncio.to_thread(store.client.put_object, Bucket=store.bucket, Key=key,
                            Body=b"x" * len(data))
    with pytest.raises(IntegrityError):
        await store.verify(ref)


def test_hub_ingests_into_s3(rig, seaweed, tmp_path):
    from support.rig import fake_segment, stored_segments

    prefix = f"hub{os.urandom(3).hex()}/"
    asyncio.run(wait_ready(make_store(seaweed, tmp_path, prefix)))
    hub = rig.start_hub(storage={"backend": "s3", "s3": {"endpoint_url": seaweed,
                                                         "bucket": BUCKET, "prefix": prefix}})
    assert isinstance(hub.service.store, S3BlobStore)
    store, up = rig.recorder("rec-a")
    seg = fake_segment(store, 400_000)
    content = seg.path.read_bytes()
    store.seal(seg)
    with up:
        assert up.wait_idle(60)
    rows = stored_segments(hub)
    assert len(rows) == 1

    async def read():
        return b"".join([b async for b in hub.service.store.read_range(rows[0].stored_ref)])

    assert hub.call(read()) == content
    assert not list((rig.root / "hub" / "store" / "staging").rglob("data")), "staging cleaned"


async def test_s3_conditional_put_refuses_overwrite(seaweed, tmp_path):
    """The store itself (not only the hub's HEAD) refuses to replace an existing key."""
    from botocore.exceptions import ClientError

    store = make_store(seaweed, tmp_path)
    await wait_ready(store)
    data = os.urandom(10_000)
    path, h = staged(store, data)
    ref = await store.put_file(path, h, len(data))
    # AWS answers 412 PreconditionFailed; SeaweedFS 4.x answers an error too (500 on some
    # versions). Either way the write is refused and the object is unchanged.
    with pytest.raises(ClientError):
        await asyncio.to_thread(store.client.put_object, Bucket=store.bucket,
                                Key=store.key_for(ref), Body=b"other", IfNoneMatch="*")
    assert b"".join([b async for b in store.read_range(ref)]) == data


@pytest.mark.parametrize("kind", ["local", "s3"])
async def test_delete_removes_one_object_and_is_idempotent(kind, seaweed, tmp_path):
    """What retention (an approved deletion) and its crash recovery rely on: ``delete`` removes
    exactly that object, and deleting an absent object is not an error."""
    store = make_store(seaweed, tmp_path) if kind == "s3" else LocalBlobStore(tmp_path / "l")
    if kind == "s3":
        await wait_ready(store)
    kept, gone = os.urandom(5000), os.urandom(7000)
    refs = []
    for data in (kept, gone):
        path, h = staged(store, data)
        refs.append(await store.put_file(path, h, len(data)))
    await store.delete(refs[1])
    assert not await store.exists(refs[1])
    await store.delete(refs[1])  # again: nothing there, no error
    await store.delete(ref_for("cd" * 32))  # never stored
    assert await store.exists(refs[0])
    assert b"".join([b async for b in store.read_range(refs[0])]) == kept
    await store.verify(refs[0])


async def test_admin_service_uses_the_hubs_s3_store(seaweed, database_url, tmp_path):
    """With ``[storage] backend = "s3"`` in hub.toml the admin service keeps and serves blobs
    in the same bucket as the hub (an attachment uploaded and downloaded here), not in its
    local folder."""
    from lerec.hub.config import S3Settings, StorageSettings
    from support.admin import PASSWORD, admin_app
    from support.admin_client import Browser, in_process_client

    prefix = f"t{os.urandom(4).hex()}/"
    await wait_ready(make_store(seaweed, tmp_path, prefix))
    storage = StorageSettings(backend="s3", s3=S3Settings(endpoint_url=seaweed, bucket=BUCKET,
                                                          prefix=prefix))
    app = admin_app(database_url, tmp_path / "local", storage=storage)
    async with app.router.lifespan_context(app), in_process_client(app) as client:
        assert isinstance(app.state.store, S3BlobStore)
        h = Browser(client)
        await h.login("handler_a", PASSWORD)
        cid = (await h.create_case())["id"]
        data = b"\xff\xd8\xff" + os.urandom(20_000)
        r = await client.post(f"/api/v1/cases/{cid}/attachments", headers=h.headers(),
                              files={"file": ("照片.jpg", data, "image/jpeg")},
                              data={"media_type": "photo"})
        assert r.status_code == 201, r.text
        att = r.json()
        ref = "sha256:" + hashlib.sha256(data).hexdigest()
        assert await make_store(seaweed, tmp_path, prefix).exists(ref)  # in the bucket
        assert not list((tmp_path / "local").rglob(ref.split(":")[1]))  # not on local disk
        got = await h.get(f"/cases/{cid}/attachments/{att['id'][4:]}")  # ("att:<n>")
        assert got.status_code == 200 and got.content == data, got.text[:3000]
