"""Archiving from the web: after a case is locked, build its signed BagIt package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lerec.protocol import keys

from ..cases.archiving import archive_package


async def build_package(ctx: Any, case_id: int) -> None:
    """With the hub key configured, archiving also builds the case's self-verifying package
    (第二十八条; :mod:`lerec.hub.cases.archiving`); without it the case is only locked."""
    app = ctx.request.app
    settings = app.state.settings
    if settings.signing_key is None:
        return
    await archive_package(
        app.state.sessions, app.state.store, ctx.rb, case_id,
        hub_key=keys.ed25519_private(Path(settings.signing_key).read_bytes()),
        archived_by=ctx.require_actor().audit,
        archive_root=Path(settings.archive_dir or Path(settings.storage_dir) / "archives"),
        origin=settings.audit_origin,
    )
