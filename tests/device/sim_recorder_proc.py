"""A simulated recorder run as its own process, for the power-cut (kill -9) test.

Usage: python sim_recorder_proc.py SPOOL_DIR. Starts recording via the mock record button,
prints "RECORDING <epoch ms of the press>" and keeps recording until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

sys.path.insert(0, str(Path(__file__).parent))

from device_helpers import CollectingSink, build_recorder, make_config
from lerec.device.clock import FakeClock, us_from_utc


def main() -> None:
    config = make_config(Path(sys.argv[1]), prerecord_seconds=1.0)
    factory, clock = MockFactory(), FakeClock()
    recorder, controls = build_recorder(config, factory, CollectingSink(), clock)
    record = factory.pin(config.gpio.record_button)
    with controls, recorder:
        time.sleep(1.5)
        press_ms = us_from_utc(clock.now()) // 1000
        record.drive_low()
        time.sleep(0.05)
        record.drive_high()
        print(f"RECORDING {press_ms}", flush=True)
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main()
