"""Blob storage for recorded segments: one interface, content-addressed and write-once."""

from .base import BlobStore, parse_ref, ref_for
from .local import LocalBlobStore

__all__ = ["BlobStore", "LocalBlobStore", "parse_ref", "ref_for"]
