"""The recorder fleet: enroll, revoke, assign/unassign an officer, time sync.

Database side only (plus the hub CA files through :mod:`lerec.deploy.pki`); publishing the
signed configs to the broker is the caller's job (``lerec-hub`` does it with
:func:`lerec.hub.daemon.oneshot.publish_retained`). Every change is written to the audit log in
the same transaction as the change itself.

Time sync: a :class:`DeviceConfig` carries ``issued_ms``, the hub's clock when it was signed.
It is published retained, so a recorder that is online receives it at once with the MQTT
retain flag *clear* and estimates ``offset = local_receive_ms - issued_ms``; the error is the
one-way broker latency (milliseconds on a LAN, always making the recorder look slightly
*behind*, never ahead). A recorder that connects later receives the retained copy with the
retain flag *set*; that copy may be hours old, so the recorder must take the officer binding
from it but not the time (or ask for a fresh ``time-sync``). The offset estimate is only
trusted when ``|offset| <= max_clock_offset_ms``; otherwise the recorder flags its clock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lerec.protocol import UNASSIGNED, DeviceConfig, keys, sign_message
from lerec.protocol.schema import ID_PATTERN
from sqlalchemy import func, select

from .audit.entries import EventType
from .audit.log import record_event
from .config import DeviceDefaults
from .db.fleet_models import DeviceCertificate, DeviceConfigRecord, OfficerAssignment
from .db.models import Device
from .db.types import to_ms, utcnow
from .errors import HubError

log = logging.getLogger(__name__)


class FleetError(HubError, ValueError):
    """A fleet command cannot be carried out; the message says why and what to do."""


@dataclass(frozen=True)
class SignedConfig:
    """A DeviceConfig as signed by the hub, ready to publish retained."""

    device_id: str
    config: DeviceConfig
    wire: bytes


def _check_id(device_id: str) -> None:
    if not ID_PATTERN.match(device_id) or device_id == "hub":
        raise FleetError(
            f"{device_id!r} is not a valid recorder id: use lower-case letters, digits, '-', "
            "'_' and '.' (and not 'hub')"
        )


def _cert_info(cert_pem: bytes, device_id: str) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise FleetError(f"not a PEM certificate: {exc}") from None
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    cn = cns[0].value if cns else None
    if cn != device_id:
        raise FleetError(f"certificate is for {cn!r}, not {device_id!r}")
    return cert


async def _get(s: Any, device_id: str) -> Device:
    dev = await s.get(Device, device_id)
    if dev is None:
        raise FleetError(f"recorder {device_id} is not enrolled (see 'lerec-hub devices')")
    return dev


async def enroll(
    sessions: Any,
    device_id: str,
    signing_pub_pem: bytes,
    cert_pem: bytes | None = None,
    label: str = "",
    actor: str = "hub",
) -> Device:
    """Record a recorder's signing key and certificate. Re-enrolling the same key is a no-op
    (a new certificate is added to its history); a different key for an enrolled id, or a
    revoked id, is refused."""
    _check_id(device_id)
    try:
        key = keys.ed25519_public(signing_pub_pem)
    except ValueError as exc:
        raise FleetError(f"the signing key is not an Ed25519 public key in PEM: {exc}") from None
    cert = _cert_info(cert_pem, device_id) if cert_pem is not None else None
    serial = format(cert.serial_number, "x") if cert is not None else None
    raw = keys.raw_public(key)
    async with sessions() as s, s.begin():
        dev = await s.get(Device, device_id)
        new = dev is None
        if dev is not None:
            if dev.revoked_at is not None:
                raise FleetError(f"{device_id} was revoked; enroll the recorder under a new id")
            if dev.signing_key != raw:
                raise FleetError(
                    f"{device_id} is enrolled with a different signing key; revoke it first"
                )
        else:
            dev = Device(device_id=device_id, signing_key=raw, cert_serial=serial, label=label,
                         enrolled_at=utcnow())
            s.add(dev)
            await s.flush()
        if cert is not None and await s.get(DeviceCertificate, serial) is None:
            s.add(DeviceCertificate(
                serial=serial, device_id=device_id, issued_at=utcnow(),
                not_after=cert.not_valid_after_utc, pem=cert_pem.decode() if cert_pem else "",
            ))
            dev.cert_serial = serial
            new = True
        if new:
            await record_event(s, EventType.DEVICE_ENROLLED, actor, [f"device:{device_id}"], {
                "signing_key": raw.hex(), "cert_serial": serial, "label": label,
            })
    if new:
        log.info("enrolled recorder %s (certificate %s)", device_id, serial)
    return dev


async def revoke(sessions: Any, device_id: str, reason: str = "", actor: str = "hub") -> Device:
    """Revoke a recorder: the hub refuses it from now on; its certificates go on the CRL."""
    async with sessions() as s, s.begin():
        dev = await _get(s, device_id)
        if dev.revoked_at is not None:
            return dev
        now = utcnow()
        dev.revoked_at = now
        certs = (await s.execute(
            select(DeviceCertificate).where(DeviceCertificate.device_id == device_id)
        )).scalars().all()
        for c in certs:
            c.revoked_at = c.revoked_at or now
        await _close_assignment(s, device_id, now)
        await record_event(s, EventType.DEVICE_REVOKED, actor, [f"device:{device_id}"], {
            "reason": reason, "cert_serials": sorted(c.serial for c in certs),
        })
    log.warning("revoked recorder %s: %s", device_id, reason or "no reason given")
    return dev


async def revoked(sessions: Any) -> tuple[list[str], list[int]]:
    """Revoked recorder ids and the serials of their certificates (for the ACL and CRL)."""
    async with sessions() as s:
        ids = (await s.execute(
            select(Device.device_id).where(Device.revoked_at.is_not(None))
        )).scalars().all()
        serials = set((await s.execute(
            select(DeviceCertificate.serial).where(DeviceCertificate.revoked_at.is_not(None))
        )).scalars().all())
        legacy = (await s.execute(
            select(Device.cert_serial).where(Device.revoked_at.is_not(None),
                                             Device.cert_serial.is_not(None))
        )).scalars().all()
    serials.update(legacy)
    return sorted(ids), sorted(int(x, 16) for x in serials)


async def _close_assignment(s: Any, device_id: str, now: Any) -> None:
    open_rows = (await s.execute(
        select(OfficerAssignment).where(OfficerAssignment.device_id == device_id,
                                        OfficerAssignment.ended_at.is_(None))
    )).scalars().all()
    for row in open_rows:
        row.ended_at = now


async def _new_config(
    s: Any, dev: Device, key: Ed25519PrivateKey, defaults: DeviceDefaults, reason: str
) -> SignedConfig:
    last = (await s.execute(
        select(func.max(DeviceConfigRecord.config_seq)).where(
            DeviceConfigRecord.device_id == dev.device_id)
    )).scalar_one_or_none()
    now = utcnow()
    cfg = DeviceConfig(
        device_id=dev.device_id, officer_id=dev.officer_id,
        config_seq=0 if last is None else last + 1, issued_ms=to_ms(now),
        segment_seconds=defaults.segment_seconds, prerecord_seconds=defaults.prerecord_seconds,
        heartbeat_seconds=defaults.heartbeat_seconds,
        max_clock_offset_ms=defaults.max_clock_offset_ms,
    )
    wire = sign_message(cfg, key)
    s.add(DeviceConfigRecord(device_id=dev.device_id, config_seq=cfg.config_seq,
                             officer_id=cfg.officer_id, reason=reason, issued_at=now, wire=wire))
    return SignedConfig(dev.device_id, cfg, wire)


async def assign(
    sessions: Any,
    device_id: str,
    officer_id: str,
    key: Ed25519PrivateKey,
    defaults: DeviceDefaults | None = None,
    actor: str = "hub",
) -> SignedConfig:
    """Bind ``officer_id`` to a recorder (``UNASSIGNED`` unbinds); return the config to push."""
    if not ID_PATTERN.match(officer_id):
        raise FleetError(f"{officer_id!r} is not a valid officer id (letters, digits, -_.)")
    defaults = defaults or DeviceDefaults()
    async with sessions() as s, s.begin():
        dev = await _get(s, device_id)
        if dev.revoked_at is not None:
            raise FleetError(f"{device_id} is revoked; it cannot be assigned")
        previous = dev.officer_id
        now = utcnow()
        await _close_assignment(s, device_id, now)
        if officer_id != UNASSIGNED:
            s.add(OfficerAssignment(device_id=device_id, officer_id=officer_id, started_at=now,
                                    actor=actor))
        dev.officer_id = officer_id
        reason = "unassign" if officer_id == UNASSIGNED else "assign"
        signed = await _new_config(s, dev, key, defaults, reason)
        await record_event(
            s, EventType.CONFIG_CHANGED, actor, [f"device:{device_id}", f"officer:{officer_id}"]
            if officer_id != UNASSIGNED else [f"device:{device_id}", f"officer:{previous}"],
            {"change": "officer_" + reason + "ed", "officer_id": officer_id,
             "previous_officer_id": previous, "config_seq": signed.config.config_seq},
        )
    log.info("recorder %s: officer %s -> %s (config %d)", device_id, previous, officer_id,
             signed.config.config_seq)
    return signed


async def unassign(
    sessions: Any, device_id: str, key: Ed25519PrivateKey,
    defaults: DeviceDefaults | None = None, actor: str = "hub",
) -> SignedConfig:
    return await assign(sessions, device_id, UNASSIGNED, key, defaults, actor)


async def time_sync(
    sessions: Any, device_ids: Sequence[str] | None, key: Ed25519PrivateKey,
    defaults: DeviceDefaults | None = None,
) -> list[SignedConfig]:
    """Sign a fresh config (same binding, current hub time) for each recorder (all active
    recorders when ``device_ids`` is None)."""
    defaults = defaults or DeviceDefaults()
    out = []
    async with sessions() as s, s.begin():
        if device_ids is None:
            devs = (await s.execute(
                select(Device).where(Device.revoked_at.is_(None)).order_by(Device.device_id)
            )).scalars().all()
        else:
            devs = [await _get(s, d) for d in device_ids]
        for dev in devs:
            if dev.revoked_at is not None:
                raise FleetError(f"{dev.device_id} is revoked; no time sync for it")
            out.append(await _new_config(s, dev, key, defaults, "time_sync"))
    return out


async def list_devices(sessions: Any) -> Sequence[Device]:
    async with sessions() as s:
        return (await s.execute(select(Device).order_by(Device.device_id))).scalars().all()


async def is_active(sessions: Any, device_id: str) -> bool:
    async with sessions() as s:
        dev = await s.get(Device, device_id)
    return dev is not None and dev.revoked_at is None


async def latest_configs(sessions: Any) -> list[SignedConfig]:
    """The newest signed config of every active recorder (to republish after an outage)."""
    from lerec.protocol import decode_signed

    out = []
    async with sessions() as s:
        devs = (await s.execute(
            select(Device).where(Device.revoked_at.is_(None)).order_by(Device.device_id)
        )).scalars().all()
        for dev in devs:
            row = (await s.execute(
                select(DeviceConfigRecord).where(DeviceConfigRecord.device_id == dev.device_id)
                .order_by(DeviceConfigRecord.config_seq.desc()).limit(1)
            )).scalar_one_or_none()
            if row is not None:
                cfg = decode_signed(row.wire, DeviceConfig).message
                out.append(SignedConfig(dev.device_id, cfg, row.wire))
    return out
