"""The hub's C2PA signing certificate, issued by the hub CA (the PKI folder's ca.crt/ca.key).

C2PA validators (c2pa-rs) require of a signer certificate: issued by a CA (not self-signed),
an Authority Key Identifier, KeyUsage digitalSignature, and an EKU they accept (lerec uses
emailProtection). Readers that pass the hub CA as a trust anchor report the claim "Trusted".
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class C2paSignerFiles:
    cert: Path  # PEM: the signer certificate (leaf), then the CA
    key: Path  # PEM: PKCS#8 EC P-256 private key (mode 0600)
    ca: Path  # the trust anchor readers should use

    def exists(self) -> bool:
        return self.cert.exists() and self.key.exists()


def issue_c2pa_signer(ca_cert_path: Path, ca_key_path: Path, out_dir: Path, *,
                      name: str = "lerec hub content credentials",
                      org: str = "lerec", validity: dt.timedelta = VALIDITY,
                      force: bool = False) -> C2paSignerFiles:
    """Issue (once; ``force`` to renew) the hub's C2PA signer certificate into ``out_dir``."""
    out_dir = Path(out_dir)
    files = C2paSignerFiles(out_dir / "c2pa-signer.crt", out_dir / "c2pa-signer.key",
                            Path(ca_cert_path))
    if files.exists() and not force:
        return files
    ca_cert = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca_key_path).read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the hub CA key must be an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    files.cert.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    fd = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return files
