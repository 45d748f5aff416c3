"""Enrolled recorders: enroll, revoke, list. (Officer assignment and time sync build on this.)"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from sqlalchemy import select

from lerec.protocol import keys

from .db.models import Device
from .db.types import utcnow

log = logging.getLogger(__name__)


async def enroll(
    sessions: Any,
    device_id: str,
    signing_pub_pem: bytes,
    cert_pem: bytes | None = None,
    label: str = "",
) -> Device:
    """Record a recorder's signing key (and certificate serial). Re-enrolling the same key is a
    no-op; a different key for an enrolled id is refused (revoke first)."""
    key = keys.ed25519_public(signing_pub_pem)
    serial = None
    if cert_pem is not None:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        if cn != device_id:
            raise ValueError(f"certificate is for {cn!r}, not {device_id!r}")
        serial = format(cert.serial_number, "x")
    async with sessions() as s, s.begin():
        dev = await s.get(Device, device_id)
        if dev is not None:
            if dev.signing_key != keys.raw_public(key):
                raise ValueError(f"{device_id} is enrolled with a different key; revoke it first")
            return dev
        dev = Device(
            device_id=device_id, signing_key=keys.raw_public(key), cert_serial=serial, label=label,
            enrolled_at=utcnow(),
        )
        s.add(dev)
    log.info("enrolled recorder %s", device_id)
    return dev


async def list_devices(sessions: Any) -> Sequence[Device]:
    async with sessions() as s:
        return (await s.execute(select(Device).order_by(Device.device_id))).scalars().all()
