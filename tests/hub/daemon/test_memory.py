"""glibc malloc tuning of the hub process (hub/daemon/memory.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

from lerec.hub.daemon import memory


def test_arena_cap_and_trim_apply_on_glibc():
    if platform.libc_ver()[0] != "glibc":
        assert memory.limit_arenas() is False and memory.trim() is False
        return
    # in a fresh interpreter: the cap must be set before threads allocate
    code = ("from lerec.hub.daemon import memory; import sys; "
            "sys.exit(0 if memory.limit_arenas(2) and memory.trim() else 1)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
