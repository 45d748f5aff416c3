"""The recorder's clip store: sealed (encrypted, signed, chained) segments and their journal."""

from .clipstore import ClipStore, ReceiptError, SpaceState, StoreFull
from .journal import Journal, JournalRow

__all__ = ["ClipStore", "Journal", "JournalRow", "ReceiptError", "SpaceState", "StoreFull"]
