"""Exported clips: hub-issued C2PA signer (Trusted against the hub CA), burned-in watermark,
access checked first, C2PA verification result in the audit log."""

from __future__ import annotations

import datetime as dt

import av
import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from lerec.hub.access import AccessError, approve, request_access
from lerec.hub.access.rules import Principal
from lerec.hub.audit import log as audit
from lerec.hub.export import export_clip, issue_c2pa_signer, read_mp4

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
HEAD = Principal("user:head", frozenset({"agency_head"}))
PARTY = Principal("user:zhang", party_of=frozenset({"C-1"}))


@pytest.fixture(scope="module")
def signer(pki, tmp_path_factory):
    return issue_c2pa_signer(pki.ca_cert, pki.ca_key, tmp_path_factory.mktemp("c2pa"))


def test_signer_certificate_meets_c2pa_requirements(signer, pki):
    cert = x509.load_pem_x509_certificates(signer.cert.read_bytes())[0]
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    assert cert.issuer == ca.subject and cert.subject != cert.issuer
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    cert.verify_directly_issued_by(ca)


def _first_frame(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


async def test_export_is_watermarked_signed_trusted_and_logged(tmp_path, evidence, mp4_bytes,
                                                               signer, pki):
    seg = await evidence.segment("rec-a", mp4_bytes)
    async with evidence.sessions() as s, s.begin():
        req = await request_access(s, PARTY, "C-1", "复议", [f"segment:{seg.segment_id}"],
                                   NOW + dt.timedelta(days=3), now=NOW)
        await approve(s, HEAD, req.id, requester=PARTY, now=NOW)
    out = tmp_path / "export.mp4"
    result = await export_clip(evidence.sessions, evidence.store, PARTY, "张三", "C-1",
                               seg.segment_id, out, signer=signer, now=NOW)
    assert result.c2pa.validation_state == "Trusted", result.c2pa.errors
    assert result.c2pa.assertion["requester"] == "张三"
    assert result.c2pa.assertion["source_sha256"] == seg.sha256
    assert result.watermark[0].endswith("user:zhang")
    # without the hub CA as anchor the same file is only "Valid" (signed, not trusted)
    assert read_mp4(out, None).validation_state == "Valid"
    # the watermark is in the pixels: the top band changed, the bottom did not
    src_path = evidence.store.path_for(seg.stored_ref)
    a, b = _first_frame(src_path).astype(int), _first_frame(out).astype(int)
    h = a.shape[0]
    assert (a[: h // 6] > 200).mean() == 0  # the source frame is dark there...
    assert (b[: h // 6] > 200).mean() > 0.02  # ...the export has white text on it
    assert np.abs(a[h // 2:] - b[h // 2:]).mean() < 6  # and the rest is untouched
    # the audit log holds the C2PA verification result
    async with evidence.sessions() as s:
        ev = [e for _, e in await audit.entries(s, subject=f"segment:{seg.segment_id}")
              if e.type.value == "export"][-1]
    assert ev.details["c2pa_validation"] == "Trusted" and ev.details["sha256"] == result.sha256
    # tampering with the exported file breaks the credentials
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    out.write_bytes(bytes(data))
    assert read_mp4(out, pki.ca_cert.read_text()).validation_state != "Trusted"


async def test_export_without_approval_is_refused_and_logged(tmp_path, evidence, mp4_bytes,
                                                             signer):
    seg = await evidence.segment("rec-a", mp4_bytes)
    with pytest.raises(AccessError) as e:
        await export_clip(evidence.sessions, evidence.store, PARTY, "张三", "C-1",
                          seg.segment_id, tmp_path / "x.mp4", signer=signer, now=NOW)
    assert e.value.code == "no_grant"
    assert not (tmp_path / "x.mp4").exists()
    async with evidence.sessions() as s:
        ev = [e for _, e in await audit.entries(s, subject="case:C-1")][-1]
    assert ev.type.value == "export" and ev.details["allowed"] is False
