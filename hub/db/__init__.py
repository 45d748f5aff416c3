"""Database layer shared by the ingest daemon and the admin service."""

from .engine import make_engine, migrate, normalize_url, sessionmaker, sqlite_url
from . import audit_models, fleet_models, trust_models  # noqa: F401  (register their tables)
from .models import Base, Device, Rejection, Segment

__all__ = [
    "Base", "Device", "Rejection", "Segment",
    "make_engine", "migrate", "normalize_url", "sessionmaker", "sqlite_url",
]
