"""The local-folder blob store: what it makes durable, and in which order."""

from __future__ import annotations

import hashlib
import os

from lerec.hub.storage import LocalBlobStore, local


def _staged(store: LocalBlobStore, data: bytes):
    path = store.staging_dir / os.urandom(4).hex()
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def test_new_object_folders_are_made_durable_before_the_object(tmp_path, monkeypatch):
    """Every folder on an object's path that the store creates is fsynced into its parent
    before the object is linked in, and the object's own folder after: a crash after the
    receipt cannot lose the folder and the object with it."""
    store = LocalBlobStore(tmp_path / "store")
    events: list[tuple[str, str]] = []
    real_fsync_dir, real_link = local.fsync_dir, os.link
    monkeypatch.setattr(local, "fsync_dir", lambda p: (events.append(("fsync", str(p))),
                                                       real_fsync_dir(p))[1])
    monkeypatch.setattr(local.os, "link", lambda a, b: (events.append(("link", str(b))),
                                                        real_link(a, b))[1])
    data = os.urandom(70_000)
    path, h = _staged(store, data)
    ref = await store.put_file(path, h, len(data))
    final = store.path_for(ref)
    objects = store.objects
    assert events == [
        ("fsync", str(objects)),  # <2 hex> created in objects/sha256
        ("fsync", str(objects / h[:2])),  # <2 hex>/<2 hex> created in <2 hex>
        ("link", str(final)),
        ("fsync", str(final.parent)),  # the object's name in its folder
    ]
    assert final.read_bytes() == data

    # An object whose folders exist creates none: one fsync, of the name it adds.
    while True:
        other = os.urandom(1000)
        oh = hashlib.sha256(other).hexdigest()
        if oh[:4] != h[:4]:
            break
    (objects / oh[:2] / oh[2:4]).mkdir(parents=True)
    events.clear()
    path, _ = _staged(store, other)
    ref2 = await store.put_file(path, oh, len(other))
    assert events == [("link", str(store.path_for(ref2))),
                      ("fsync", str(store.path_for(ref2).parent))]
