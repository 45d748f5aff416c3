"""Upload of sealed segments to the hub over MQTT v5 (resumable, receipt before delete)."""

from .uploader import Uploader, UploaderStats, tls_context

__all__ = ["Uploader", "UploaderStats", "tls_context"]
