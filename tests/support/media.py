"""Reading the recorder's media files in tests."""

from __future__ import annotations

from pathlib import Path

import av


def inner_keyframes(path: Path) -> list[float]:
    """Seconds from a segment's first keyframe to each later keyframe in it, from the mp4's
    video pts (the camera's monotonic capture stamps, so exact whatever the machine's load)."""
    with av.open(str(path)) as c:
        keys = [float(p.pts * p.time_base) for p in c.demux(c.streams.video[0])
                if p.size and p.is_keyframe]
    return [k - keys[0] for k in keys[1:]]
