"""Verification of everything the hub vouches for: ``lerec-verify log | store | archive``.

- :mod:`.logcheck`: the audit log, entry by entry and node by node, against signed checkpoints;
- :mod:`.storecheck`: every stored blob against its content address, row, manifest, receipt;
- :mod:`.archivecheck`: an archive package offline (no database, no network);
- :mod:`.checkpointer`: scheduled and on-demand signed checkpoints.
"""

from .checkpointer import checkpoint_loop, checkpoint_now
from .findings import Finding, Report

__all__ = ["Finding", "Report", "checkpoint_loop", "checkpoint_now"]
