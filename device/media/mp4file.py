"""One segment on disk: a fragmented MP4 written with PyAV, and its recovery after a power cut.

The file is written as ``<name>.mp4.part`` with ``movflags=frag_keyframe+empty_moov+
default_base_moof``: the moov (codec setup) comes first and every keyframe starts a new
fragment, so after a power cut everything up to the last complete fragment (~1 s) is intact.
A sidecar ``<name>.mp4.part.json`` holds what the file cannot: wall-clock start, importance,
clock state. :func:`recover_partial` remuxes the complete fragments into a finished file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av
from lerec.device.clock import ClockStatus, utc_from_us
from lerec.device.errors import MediaError, RecoveryError
from lerec.device.media.output import MediaPacket
from lerec.device.media.segment import (
    PART_SUFFIX,
    SIDECAR_SUFFIX,
    EndReason,
    FinishedSegment,
    MediaType,
)

log = logging.getLogger(__name__)

VIDEO_FLAGS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}
AUDIO_FLAGS = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
               "frag_duration": "1000000", "flush_packets": "1"}
VIDEO_TB = Fraction(1, 90_000)


@dataclass(frozen=True)
class StreamSetup:
    """What a segment file contains."""

    video: tuple[int, int, int] | None     # (width, height, fps) or None for audio-only
    audio: tuple[int, int, int] | None     # (sample_rate, channels, bitrate) or None


@dataclass
class _Sidecar:
    start_us: int
    media_type: str
    codecs: list[str]
    important: bool
    prerecord_seconds: float
    device_id: str
    officer_id: str
    clock_sync: str
    clock_source: str
    clock_offset_seconds: float | None


def part_path(final: Path) -> Path:
    return final.with_name(final.name + PART_SUFFIX)


def sidecar_path(part: Path) -> Path:
    return part.with_name(part.name + SIDECAR_SUFFIX)


def _write_json_atomic(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SegmentFile:
    """Writes one segment. Not thread-safe: owned by the pipeline's writer thread."""

    def __init__(self, final_path: Path, setup: StreamSetup, first: MediaPacket, *,
                 prerecord_seconds: float, device_id: str, officer_id: str,
                 clock: ClockStatus, important: bool = False, fsync: bool = True) -> None:
        self.final_path = final_path
        self.part = part_path(final_path)
        self.setup = setup
        self.start_mono = first.mono_us
        self.start_wall = first.wall_us
        self.last_mono = first.mono_us
        self.last_wall = first.wall_us
        self.frames = 0
        self._fsync = fsync
        self._last_audio_pts = -1
        self._last_video_pts = -1
        media_type: MediaType = "video/mp4" if setup.video else "audio/mp4"
        codecs = (["avc1"] if setup.video else []) + (["mp4a"] if setup.audio else [])
        self.meta = _Sidecar(first.wall_us, media_type, codecs, important, prerecord_seconds,
                             device_id, officer_id, clock.sync, clock.source,
                             clock.offset_seconds)
        _write_json_atomic(sidecar_path(self.part), asdict(self.meta))
        # created here so it can be fsync'd; PyAV opens it only when the header is written
        self._sync_fd = os.open(self.part, os.O_RDONLY | os.O_CREAT, 0o600)
        try:
            self._container = av.open(str(self.part), "w", format="mp4",
                                      options=VIDEO_FLAGS if setup.video else AUDIO_FLAGS)
            self._container.metadata["creation_time"] = utc_from_us(first.wall_us).isoformat()
            self._vstream = self._astream = None
            if setup.video:
                w, h, fps = setup.video
                self._vstream = self._container.add_mux_stream("h264", rate=fps, width=w,
                                                               height=h)
                self._vstream.time_base = VIDEO_TB
            if setup.audio:
                rate, channels, bitrate = setup.audio
                self._astream = self._container.add_stream(
                    "aac", rate=rate, layout="mono" if channels == 1 else "stereo")
                self._astream.bit_rate = bitrate
                self._astream.time_base = Fraction(1, rate)
        except av.error.FFmpegError as exc:
            os.close(self._sync_fd)
            raise MediaError(self.part, f"cannot open segment file: {exc}") from exc

    @property
    def duration_us(self) -> int:
        return int(self.last_mono - self.start_mono)

    def mark_important(self) -> None:
        if not self.meta.important:
            self.meta.important = True
            _write_json_atomic(sidecar_path(self.part), asdict(self.meta))

    def write(self, pkt: MediaPacket) -> None:
        """Mux one packet (audio older than the segment start is dropped by the caller)."""
        rel = pkt.mono_us - self.start_mono
        if pkt.audio:
            if self._astream is None:
                return
            rate = self._astream.codec_context.sample_rate
            pts = max(rel * rate // 1_000_000, self._last_audio_pts + 1)
            self._last_audio_pts = pts
            packet = av.Packet(pkt.data)
            packet.stream = self._astream
            packet.time_base = Fraction(1, rate)
            if self.setup.video is None:
                self.frames += 1
        else:
            if self._vstream is None:
                return
            pts = max(rel * 90_000 // 1_000_000, self._last_video_pts + 1)
            self._last_video_pts = pts
            packet = av.Packet(pkt.data)
            packet.stream = self._vstream
            packet.time_base = VIDEO_TB
            self.frames += 1
        packet.pts = packet.dts = pts
        packet.is_keyframe = pkt.keyframe
        try:
            self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise MediaError(self.part, f"cannot write packet: {exc}") from exc
        if pkt.mono_us > self.last_mono:
            self.last_mono, self.last_wall = pkt.mono_us, pkt.wall_us
        if pkt.keyframe and not pkt.audio and self._fsync:
            os.fsync(self._sync_fd)   # the previous fragment has just been written

    def finish(self, reason: EndReason) -> FinishedSegment:
        """Close, fsync, rename ``.part`` to the final name and describe the result."""
        try:
            self._container.close()
        except av.error.FFmpegError as exc:
            raise MediaError(self.part, f"cannot close segment file: {exc}") from exc
        finally:
            if self._fsync:
                os.fsync(self._sync_fd)
            os.close(self._sync_fd)
        os.replace(self.part, self.final_path)
        _fsync_dir(self.final_path.parent)
        sidecar_path(self.part).unlink(missing_ok=True)
        return _finished(self.final_path, self.meta, self.last_wall, self.frames, reason,
                         recovered=False)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finished(path: Path, meta: _Sidecar, end_us: int, frames: int, reason: EndReason,
              recovered: bool) -> FinishedSegment:
    media_type: MediaType = "video/mp4" if meta.media_type == "video/mp4" else "audio/mp4"
    return FinishedSegment(
        path=path, start_time=utc_from_us(meta.start_us), end_time=utc_from_us(end_us),
        media_type=media_type, codecs=tuple(meta.codecs), important=meta.important,
        prerecord_seconds=meta.prerecord_seconds, frames=frames, device_id=meta.device_id,
        officer_id=meta.officer_id, end_reason=reason, clock_sync=meta.clock_sync,
        clock_source=meta.clock_source, clock_offset_seconds=meta.clock_offset_seconds,
        recovered=recovered)


def _read_sidecar(part: Path) -> _Sidecar | None:
    try:
        data = json.loads(sidecar_path(part).read_text(encoding="utf-8"))
        return _Sidecar(**data)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("sidecar of %s unreadable (%s); using file times", part, exc)
        return None


def recover_partial(path: Path) -> FinishedSegment | None:
    """Turn a ``.part`` segment left by a power cut into a playable finished file.

    Remuxes every complete fragment (the torn tail is dropped) into ``<name>.mp4`` next to it,
    then removes the ``.part`` and its sidecar. Returns None, leaving the files untouched, when
    nothing is recoverable (no header or no complete fragment). Raises :class:`RecoveryError`
    when ``path`` is not a ``.part`` file.
    """
    path = Path(path)
    if path.suffix != PART_SUFFIX:
        raise RecoveryError(path, "not a '.part' segment")
    final = path.with_name(path.name[: -len(PART_SUFFIX)])
    meta = _read_sidecar(path)
    tmp = final.with_name(final.name + ".recovering")
    try:
        frames, span_us, has_video = _remux(path, tmp)
    except (av.error.FFmpegError, OSError) as exc:
        log.warning("nothing recoverable in %s: %s", path, exc)
        tmp.unlink(missing_ok=True)
        return None
    if span_us is None:
        log.warning("no complete fragment in %s", path)
        tmp.unlink(missing_ok=True)
        return None
    if meta is None:
        start_us = int(path.stat().st_mtime * 1_000_000) - span_us
        meta = _Sidecar(start_us, "video/mp4" if has_video else "audio/mp4",
                        ["avc1", "mp4a"] if has_video else ["mp4a"], False, 0.0, "", "",
                        "unsynced", "file-mtime", None)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    path.unlink()
    sidecar_path(path).unlink(missing_ok=True)
    log.info("recovered %s (%.1f s)", final, span_us / 1e6)
    return _finished(final, meta, meta.start_us + span_us, frames, "recovered", recovered=True)


def _remux(src: Path, dst: Path) -> tuple[int, int | None, bool]:
    """Copy every readable packet of ``src`` into a fresh fMP4 ``dst``.

    Returns (video frames or audio packets, span in µs of the last packet start, has video).
    """
    with av.open(str(src)) as inp:
        has_video = bool(inp.streams.video)
        with av.open(str(dst), "w", format="mp4",
                     options=VIDEO_FLAGS if has_video else AUDIO_FLAGS) as out:
            mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams
                       if s.type in ("video", "audio")}
            counted = "video" if has_video else "audio"
            frames, span = 0, None
            try:
                for packet in inp.demux(*[s for s in inp.streams if s.index in mapping]):
                    if packet.dts is None or packet.size == 0 or packet.is_corrupt:
                        continue
                    stream = packet.stream
                    assert packet.time_base is not None
                    at_us = int((packet.pts or 0) * packet.time_base * 1_000_000)
                    packet.stream = mapping[stream.index]
                    out.mux(packet)
                    if stream.type == counted:
                        frames += 1
                        span = at_us if span is None else max(span, at_us)
            except av.error.FFmpegError as exc:   # the torn tail
                log.info("stopped reading %s at a torn fragment: %s", src, exc)
    return frames, span, has_video
