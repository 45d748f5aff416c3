"""What the operator installs: systemd units, the Pi setup script, the example config and the
wiring table. ``systemd-analyze verify`` checks the units where it exists (it does on Debian
and on Raspberry Pi OS); otherwise a structural check runs."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lerec.device.controls import WIRING
from lerec.device.media.config import GpioConfig
from lerec.device.settings import DeviceSettings, seal_reserve_bytes

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
BIN = Path(sys.executable).parent


def _unit(path: Path) -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    p.optionxform = str  # type: ignore[assignment,method-assign]
    p.read_string(path.read_text())
    return p


def test_the_three_units_exist():
    assert {u.name for u in UNITS} == {"lerec-recorder.service", "lerec-hub.service",
                                       "lerec-admin.service"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_is_hardened_and_restarts(unit):
    u = _unit(unit)
    svc = u["Service"]
    assert svc["User"] == "lerec" and svc["Restart"] == "always"
    assert svc["ProtectSystem"] == "strict" and svc["NoNewPrivileges"] == "yes"
    assert svc["CapabilityBoundingSet"] == ""
    assert u["Install"]["WantedBy"] == "multi-user.target"
    exe = svc["ExecStart"].split()[0]
    assert exe.startswith("/opt/lerec/venv/bin/lerec-")
    assert (BIN / Path(exe).name).exists(), f"{exe}: no such console script"


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies_with_systemd(unit, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:   # structural check only (done above); say so loudly in the output
        print("systemd-analyze not installed: structural check only")
        return
    # point the executables at this venv so verify can check them
    text = unit.read_text().replace("/opt/lerec/venv/bin/", f"{BIN}/")
    copy = tmp_path / unit.name
    copy.write_text(text)
    out = subprocess.run([tool, "verify", "--man=no", str(copy)], check=False, capture_output=True,
                         text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if unit.name in line or "Unknown" in line]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr


def test_recorder_unit_runs_the_recorder():
    svc = _unit(ROOT / "deploy/systemd/lerec-recorder.service")["Service"]
    assert svc["ExecStart"].endswith("lerec-recorder --config /etc/lerec/recorder.toml run")
    assert "gpio" in svc["SupplementaryGroups"] and svc["StateDirectory"] == "lerec"


def test_example_config_loads_and_can_seal_at_the_floor():
    s = DeviceSettings.load(ROOT / "deploy/pi/recorder.toml.example")
    assert s.recorder.video.backend == "picamera2" and s.recorder.audio.backend == "pyaudio"
    assert s.recorder.gpio.pin_factory == "native"
    assert s.recorder.storage.floor_bytes >= seal_reserve_bytes(s.recorder)
    assert s.data_dir == Path("/var/lib/lerec")


def test_setup_script_is_shellcheck_clean():
    script = ROOT / "deploy/pi/setup.sh"
    text = script.read_text()
    for needed in ("python3-picamera2", "python3-lgpio", "portaudio19-dev",
                   "--system-site-packages", "[device]", "recorder.toml.example",
                   "systemctl enable lerec-recorder"):
        assert needed in text, needed
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.fail("shellcheck is not installed: apt-get install shellcheck")
    out = subprocess.run([tool, "-x", str(script)], check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_wiring_doc_matches_the_code():
    doc = (ROOT / "deploy/pi/WIRING.md").read_text()
    defaults = GpioConfig()
    for part, field in (("record button", "record_button"),
                        ("mark-important button", "mark_button"),
                        ("power LED", "power_led"), ("video LED", "video_led"),
                        ("audio-only LED", "audio_led"), ("buzzer", "buzzer")):
        bcm = getattr(defaults, field)
        row = next(line for line in doc.splitlines() if line.startswith(f"| {part}"))
        assert re.search(rf"\|\s*{bcm}\s*\|", row), (part, row)
        assert f"BCM {bcm} " in WIRING[field], (field, WIRING[field])
        phys = re.search(r"\(pin (\d+)\)", WIRING[field]).group(1)
        assert re.search(rf"\|\s*{phys}\s*\|", row), (part, phys, row)
