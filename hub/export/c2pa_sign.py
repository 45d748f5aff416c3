"""C2PA content credentials on exported clips (c2pa-python), signed with the hub's certificate
and verified against the hub CA right after signing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa

from .certs import C2paSignerFiles

DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
ASSERTION = "cn.lerec.export"


@dataclass(frozen=True)
class C2paResult:
    validation_state: str | None  # "Trusted" when the reader trusts the hub CA
    active_manifest: str | None
    assertion: dict[str, Any] | None
    errors: tuple[str, ...]


def sign_mp4(src: Path, dst: Path, signer: C2paSignerFiles, *, title: str,
             export: dict[str, Any], generator: str = "lerec hub") -> None:
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "0.1"}],
        "title": title,
        "format": "video/mp4",
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": DIGITAL_CAPTURE,
                 "description": "body-worn recorder segment, stored write-once by the hub"},
                {"action": "c2pa.edited",
                 "description": "visible watermark naming the requester and time"},
            ]}},
            {"label": ASSERTION, "data": export},
        ],
    }
    info = c2pa.C2paSignerInfo("es256", signer.cert.read_bytes(), signer.key.read_bytes(), None)
    with c2pa.Signer.from_info(info) as s, c2pa.Builder(manifest) as b, \
            open(src, "rb") as fin, open(dst, "w+b") as fout:
        b.sign(s, "video/mp4", fin, fout)


def read_mp4(path: Path, trust_anchor_pem: str | None) -> C2paResult:
    """Read and validate the content credentials of ``path``."""
    ctx = None
    if trust_anchor_pem is not None:
        settings = c2pa.Settings.from_dict({"verify": {"verify_trust": True},
                                            "trust": {"trust_anchors": trust_anchor_pem}})
        ctx = c2pa.Context(settings=settings)
    try:
        with open(path, "rb") as f, c2pa.Reader("video/mp4", f, context=ctx) as r:
            state = r.get_validation_state()
            data = json.loads(r.json())
    except c2pa.C2paError as exc:
        return C2paResult(None, None, None, (str(exc),))
    active = data.get("active_manifest")
    manifest = data.get("manifests", {}).get(active, {})
    assertion = next((a.get("data") for a in manifest.get("assertions", [])
                      if a.get("label") == ASSERTION), None)
    errors = tuple(
        f"{s.get('code')}: {s.get('explanation', '')}"
        for s in data.get("validation_results", {}).get("activeManifest", {}).get("failure", []))
    return C2paResult(state, active, assertion, errors)
