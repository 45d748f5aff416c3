"""Development PKI for lerec, written with ``cryptography.x509``.

Layout of a PKI folder::

    ca.crt, ca.key                  hub CA (issues every TLS certificate)
    broker/broker.crt, broker.key   mosquitto server certificate (localhost, 127.0.0.1)
    hub/client.crt, client.key      hub's MQTT client certificate (CN=hub)
    hub/signing.key, signing.pub    hub Ed25519 key: receipts, device config, audit checkpoints
    hub/box.key, box.pub            hub X25519 key: recorders seal segments to it
    devices/<id>/client.crt, .key   one recorder's MQTT client certificate (CN=<id>)
    devices/<id>/signing.key, .pub  the recorder's Ed25519 manifest signing key
    devices/<id>/ca.crt, hub-signing.pub, hub-box.pub   what the recorder must trust

In production the recorder generates its own keys and only the public halves travel; the dev
PKI generates both for convenience. Private keys are written mode 0600.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=3650)
DEVICE_VALIDITY = dt.timedelta(days=825)
_PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class DeviceFiles:
    """Paths a recorder needs (all inside ``devices/<id>/``)."""

    root: Path

    @property
    def device_id(self) -> str:
        return self.root.name

    cert = property(lambda self: self.root / "client.crt")
    key = property(lambda self: self.root / "client.key")
    signing_key = property(lambda self: self.root / "signing.key")
    signing_pub = property(lambda self: self.root / "signing.pub")
    ca = property(lambda self: self.root / "ca.crt")
    hub_signing_pub = property(lambda self: self.root / "hub-signing.pub")
    hub_box_pub = property(lambda self: self.root / "hub-box.pub")


@dataclass(frozen=True)
class Pki:
    """A PKI folder and the well-known paths inside it."""

    root: Path

    ca_cert = property(lambda self: self.root / "ca.crt")
    ca_key = property(lambda self: self.root / "ca.key")
    broker_cert = property(lambda self: self.root / "broker" / "broker.crt")
    broker_key = property(lambda self: self.root / "broker" / "broker.key")
    hub_cert = property(lambda self: self.root / "hub" / "client.crt")
    hub_key = property(lambda self: self.root / "hub" / "client.key")
    hub_signing_key = property(lambda self: self.root / "hub" / "signing.key")
    hub_signing_pub = property(lambda self: self.root / "hub" / "signing.pub")
    hub_box_key = property(lambda self: self.root / "hub" / "box.key")
    hub_box_pub = property(lambda self: self.root / "hub" / "box.pub")
    crl = property(lambda self: self.root / "crl.pem")

    def device(self, device_id: str) -> DeviceFiles:
        return DeviceFiles(self.root / "devices" / device_id)

    def exists(self) -> bool:
        return self.ca_cert.exists() and self.hub_box_key.exists()


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _private_pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(key: object) -> bytes:
    return key.public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def load_private_key(path: Path) -> object:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lerec"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)


def _issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject_key: ec.EllipticCurvePrivateKey,
    cn: str,
    *,
    server: bool,
    sans: list[x509.GeneralName] | None = None,
    validity: dt.timedelta = VALIDITY,
) -> x509.Certificate:
    eku = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=False, content_commitment=False,
                data_encipherment=False, key_agreement=True, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _load_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = load_private_key(pki.ca_key)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def init_pki(root: Path, broker_hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> Pki:
    """Create a complete dev PKI in ``root`` (idempotent: keeps an existing one)."""
    pki = Pki(Path(root))
    if pki.exists():
        return pki
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("lerec hub CA"))
        .issuer_name(_name("lerec hub CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=False, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(pki.ca_key, _private_pem(ca_key), private=True)
    _write(pki.ca_cert, ca_cert.public_bytes(_PEM))

    sans: list[x509.GeneralName] = []
    for host in broker_hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker = _issue(ca_cert, ca_key, broker_key, broker_hosts[0], server=True, sans=sans)
    _write(pki.broker_key, _private_pem(broker_key), private=True)
    _write(pki.broker_cert, broker.public_bytes(_PEM))

    hub_key = ec.generate_private_key(ec.SECP256R1())
    _write(pki.hub_key, _private_pem(hub_key), private=True)
    _write(pki.hub_cert, _issue(ca_cert, ca_key, hub_key, "hub", server=False).public_bytes(_PEM))

    signing = ed25519.Ed25519PrivateKey.generate()
    _write(pki.hub_signing_key, _private_pem(signing), private=True)
    _write(pki.hub_signing_pub, _public_pem(signing.public_key()))
    box = x25519.X25519PrivateKey.generate()
    _write(pki.hub_box_key, _private_pem(box), private=True)
    _write(pki.hub_box_pub, _public_pem(box.public_key()))
    write_crl(pki, [])
    return pki


def issue_device(pki: Pki, device_id: str) -> DeviceFiles:
    """Issue a recorder its client certificate and signing key (idempotent)."""
    from lerec.protocol.schema import ID_PATTERN

    if not ID_PATTERN.match(device_id) or device_id == "hub":
        raise ValueError(f"invalid device id {device_id!r}: use lower-case letters, digits, -_.")
    files = pki.device(device_id)
    if files.cert.exists() and files.signing_key.exists():
        return files
    ca_cert, ca_key = _load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _issue(ca_cert, ca_key, key, device_id, server=False, validity=DEVICE_VALIDITY)
    _write(files.key, _private_pem(key), private=True)
    _write(files.cert, cert.public_bytes(_PEM))
    signing = ed25519.Ed25519PrivateKey.generate()
    _write(files.signing_key, _private_pem(signing), private=True)
    _write(files.signing_pub, _public_pem(signing.public_key()))
    shutil.copyfile(pki.ca_cert, files.ca)
    shutil.copyfile(pki.hub_signing_pub, files.hub_signing_pub)
    shutil.copyfile(pki.hub_box_pub, files.hub_box_pub)
    return files


def write_crl(pki: Pki, revoked_serials: list[int]) -> Path:
    """(Re)write the CA's CRL listing ``revoked_serials`` (mosquitto reads it as ``crlfile``)."""
    ca_cert, ca_key = _load_ca(pki)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=30))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    _write(pki.crl, builder.sign(ca_key, hashes.SHA256()).public_bytes(_PEM))
    return pki.crl


def certificate_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lerec-pki",
        description="Create the development PKI (hub CA, broker, hub and recorder certificates "
        "and signing keys). Production hubs issue recorder certificates with "
        "'lerec-hub enroll'.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_init = sub.add_parser("init", help="create the CA, broker and hub credentials")
    p_init.add_argument("dir", type=Path, help="PKI folder, e.g. var/pki")
    p_init.add_argument(
        "--broker-host", action="append", default=None,
        help="host name or IP in the broker certificate (repeatable; default localhost, 127.0.0.1)",
    )
    p_dev = sub.add_parser("device", help="issue one recorder's certificate and signing key")
    p_dev.add_argument("dir", type=Path, help="PKI folder")
    p_dev.add_argument("device_id", help="recorder id, e.g. rec-001")
    args = parser.parse_args(argv)
    if args.cmd == "init":
        hosts = tuple(args.broker_host or ("localhost", "127.0.0.1"))
        pki = init_pki(args.dir, hosts)
        print(f"PKI ready in {pki.root}")
    else:
        files = issue_device(Pki(args.dir), args.device_id)
        print(f"recorder {args.device_id}: credentials in {files.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
