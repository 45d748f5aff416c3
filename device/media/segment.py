"""The handoff from the recording pipeline to the clip store.

When a segment file is complete (stop, rollover, storage full, power-off, or recovery after a
power cut) the pipeline calls ``sink.segment_finished(seg)`` with a :class:`FinishedSegment`.
The file then lives at ``seg.path`` in the spool folder and belongs to the store. While being
written a segment is ``<name>.mp4.part`` with a sidecar ``<name>.mp4.part.json``; see
:func:`lerec.device.media.mp4file.recover_partial`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

MediaType = Literal["video/mp4", "audio/mp4"]
EndReason = Literal["button", "rollover", "storage-full", "power-off", "shutdown", "recovered"]

PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".json"


@dataclass(frozen=True)
class FinishedSegment:
    """A complete, playable fragmented-MP4 segment in the spool folder."""

    path: Path
    start_time: datetime            # aware UTC, capture time of the first frame
    end_time: datetime              # aware UTC, capture time of the last frame
    media_type: MediaType
    codecs: tuple[str, ...]         # ("avc1", "mp4a") or ("mp4a",)
    important: bool
    prerecord_seconds: float        # how much of the segment precedes the press
    frames: int                     # video frames (audio-only: audio packets)
    device_id: str = ""
    officer_id: str = ""
    end_reason: EndReason = "button"
    clock_sync: str = "unsynced"    # "synced" | "unsynced" | "holdover" at segment start
    clock_source: str = ""
    clock_offset_seconds: float | None = None
    recovered: bool = False         # True when rebuilt from a ".part" after a power cut

    @property
    def duration_seconds(self) -> float:
        return (self.end_time - self.start_time).total_seconds()


class SegmentSink(Protocol):
    """What the clip store implements to receive segments.

    Called from the pipeline's writer thread; it should return quickly (queue the work).
    An exception is logged and the file stays in the spool folder.
    """

    def segment_finished(self, seg: FinishedSegment) -> None: ...
