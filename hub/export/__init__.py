"""Exported clips: visible watermark (PyAV) and C2PA content credentials (c2pa-python)."""

from .c2pa_sign import C2paResult, read_mp4, sign_mp4
from .certs import C2paSignerFiles, issue_c2pa_signer
from .service import ExportResult, export_clip
from .watermark import watermark_video

__all__ = ["C2paResult", "C2paSignerFiles", "ExportResult", "export_clip", "issue_c2pa_signer",
           "read_mp4", "sign_mp4", "watermark_video"]
