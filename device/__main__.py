"""``lerec-recorder``: run the body-worn recorder (on a Pi) or simulate one (on any PC)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from .errors import DeviceError
from .settings import DeviceSettings

log = logging.getLogger("lerec.device")

HELP_KEYS = "keys: r = record/stop, m = mark important, l = long-press record, s = status, q = quit"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lerec-recorder",
        description="lerec body-worn recorder: records, seals each segment (encrypted to the "
        "hub, signed, chained) and uploads it; a segment leaves the card only after the hub's "
        "signed receipt.",
    )
    p.add_argument("--config", type=Path, default=Path("/etc/lerec/recorder.toml"),
                   help="recorder config file (TOML)")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="run on real hardware until stopped (systemd runs this)")
    sim = sub.add_parser(
        "simulate",
        help="run with simulated camera, microphone and buttons (gpiozero MockFactory)",
        description="Simulated recorder. Without --press-after it reads keys from stdin: "
        + HELP_KEYS,
    )
    sim.add_argument("--press-after", type=float, metavar="S",
                     help="press record S seconds after start (scripted demo)")
    sim.add_argument("--record-seconds", type=float, default=5.0, metavar="S",
                     help="with --press-after: press again to stop after S seconds")
    sim.add_argument("--mark", action="store_true", help="with --press-after: also press mark")
    sim.add_argument("--exit-when-uploaded", action="store_true",
                     help="with --press-after: exit once every segment is receipted")
    sim.add_argument("--timeout", type=float, default=300.0,
                     help="with --exit-when-uploaded: give up after S seconds (exit 1)")
    sub.add_parser("status", help="show what the clip store holds (no playback: by design)")
    return p


def _status(settings: DeviceSettings) -> int:
    """What the card holds. Read-only; there is deliberately no play, export or delete."""
    import shutil

    from .store.journal import Journal

    db = settings.data_dir / "journal.db"
    if not db.exists():
        print(f"device {settings.recorder.device_id}: no clip store at {settings.data_dir}")
        return 0
    journal = Journal(db)
    try:
        pending = journal.pending()
        counts = journal.counts()
        free = shutil.disk_usage(settings.data_dir).free
        print(f"device {settings.recorder.device_id}: next seq {journal.head()[0]}, "
              f"{len(pending)} pending ({journal.pending_bytes()} bytes), "
              f"{counts.get('receipted', 0)} receipted, {counts.get('refused', 0)} refused, "
              f"{free} bytes free")
        print(_recording_settings(settings, journal.get_meta("hub_config")))
        for row in pending:
            print(f"  pending  seq {row.seq:6d}  {row.segment_id}"
                  f"{'  important' if row.important else ''}")
        for row in journal.refused():
            _code, reason = journal.refusal(row.seq) or ("", "")
            print(f"  REFUSED  seq {row.seq:6d}  {row.segment_id}  [{row.refused_code}] "
                  f"{reason}  (kept on the card: report it to the hub administrator)")
    finally:
        journal.close()
    return 0


def _recording_settings(settings: DeviceSettings, saved: bytes | None) -> str:
    """The segment and pre-record lengths the recorder records with: the hub's config kept
    on the card where this recorder accepts its values (as at boot), else the file's."""
    from .app import verified_config

    rec = settings.recorder
    note = ""
    try:
        cfg = verified_config(settings, saved)
    except OSError as exc:   # the hub's public key is missing or unreadable
        cfg, note = None, f"; the hub config on the card cannot be checked: {exc}"
    if cfg is None:
        return (f"recording: segment {rec.segment_seconds:g} s, pre-record "
                f"{rec.prerecord_seconds:g} s (config file{note})")
    (seg, pre), problems = settings.recording_lengths(cfg.segment_seconds,
                                                      cfg.prerecord_seconds)
    line = (f"recording: segment {seg:g} s, pre-record {pre:g} s (hub config "
            f"{cfg.config_seq}, heartbeat {cfg.heartbeat_seconds} s)")
    return "\n".join([line] + [f"  hub value ignored: {p}" for p in problems])


def _interactive(app: RecorderApp, stop: threading.Event) -> None:  # noqa: F821
    print(HELP_KEYS, flush=True)
    for line in sys.stdin:
        key = line.strip().lower()
        if key == "r":
            app.press("record")
        elif key == "m":
            app.press("mark")
        elif key == "l":
            app.press("record", hold=app.settings.recorder.gpio.long_press_seconds + 0.2)
        elif key == "s":
            hb = app.heartbeat()
            print(f"state={hb.state} last_seq={hb.last_seq} pending={hb.pending_segments} "
                  f"officer={hb.officer_id} clock={hb.clock.state} "
                  f"segment={app.segment_seconds:g}s prerecord={app.prerecord_seconds:g}s",
                  flush=True)
        elif key == "q":
            break
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = DeviceSettings.load(args.config)
        if args.cmd == "status":
            return _status(settings)
        if args.cmd == "simulate" and settings.recorder.gpio.pin_factory != "mock":
            raise DeviceError("simulate needs recorder.gpio.pin_factory = 'mock'")
        from .app import RecorderApp

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with RecorderApp(settings) as app:
            if args.cmd == "simulate" and args.press_after is not None:
                first_seq = app.store.last_seq()
                time.sleep(args.press_after)
                app.press("record")
                if args.mark:
                    time.sleep(0.5)
                    app.press("mark")
                time.sleep(args.record_seconds)
                app.press("record")
                if args.exit_when_uploaded:
                    deadline = time.monotonic() + args.timeout
                    time.sleep(1.0)
                    while time.monotonic() < deadline and (
                            app.store.pending() or app.store.last_seq() <= first_seq):
                        time.sleep(0.2)
                    ok = not app.store.pending() and app.store.last_seq() > first_seq
                    print("all segments receipted by the hub; local copies removed" if ok
                          else "timed out waiting for the hub", flush=True)
                    return 0 if ok else 1
            elif args.cmd == "simulate":
                threading.Thread(target=_interactive, args=(app, stop), daemon=True).start()
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
    except DeviceError as exc:
        print(f"lerec-recorder: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
