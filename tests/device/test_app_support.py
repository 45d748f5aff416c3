"""Helpers for the app-level recorder tests (no tests here; imported by name).

Everything is real: the rig's mosquitto and hub, the recorder app with gpiozero's MockFactory.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lerec.device.settings import DeviceSettings


def wait_for(pred: Callable[[], Any], timeout: float = 30.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    return pred()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def settings_dict(rig: Any, device_id: str, root: Path, **extra: Any) -> dict[str, Any]:
    f = rig.pki.device(device_id)
    base = {
        "data_dir": str(root / "card"),
        "recorder": {
            "device_id": device_id, "prerecord_seconds": 1, "segment_seconds": 60,
            "gpio": {"pin_factory": "mock", "long_press_seconds": 0.5},
            "storage": {"spool_dir": str(root / "card" / "spool"), "low_space_bytes": 0,
                        "floor_bytes": 0, "check_interval_seconds": 0.5},
            "clock_check_seconds": 0.2,
        },
        "hub": {"host": "127.0.0.1", "port": rig.port, "ca": str(f.ca), "cert": str(f.cert),
                "key": str(f.key), "signing_key": str(f.signing_key),
                "hub_signing_pub": str(f.hub_signing_pub), "hub_box_pub": str(f.hub_box_pub),
                "heartbeat_seconds": 1, "reply_timeout_seconds": 5, "chunk_bytes": 256 * 1024,
                "max_backoff_seconds": 2},
    }
    return _merge(base, extra)


def app_settings(rig: Any, device_id: str, root: Path, **extra: Any) -> DeviceSettings:
    return DeviceSettings.model_validate(settings_dict(rig, device_id, root, **extra))


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A tiny TOML writer for nested dicts of str/int/float/bool (enough for configs)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for k, v in data.items():
        if isinstance(v, dict):
            tables.append((f"{prefix}{k}", v))
        elif v is None:
            continue
        elif isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, int | float):
            lines.append(f"{k} = {v!r}")
        else:
            lines.append(f"{k} = {str(v)!r}".replace("'", '"'))
    out = "\n".join(lines) + "\n"
    for name, table in tables:
        out += f"\n[{name}]\n" + to_toml(table, prefix=f"{name}.")
    return out


def press(factory: Any, pin_no: int, hold: float = 0.05) -> None:
    pin = factory.pin(pin_no)
    pin.drive_low()
    time.sleep(hold)
    pin.drive_high()


def beeps(states: list[Any]) -> list[float]:
    """Lengths (s) of the buzzer's on-periods in a MockPin history (``clear_states()`` first
    to scope it). MockPin stamps each change with the time since the previous change."""
    return [round(cur.timestamp, 2) for prev, cur in itertools.pairwise(states)
            if prev.state and not cur.state]


def long_beeps(states: list[Any], at_least: float = 0.5) -> int:
    """How many on-periods last ``at_least`` seconds (STORAGE_FULL beeps 3 x 0.6 s)."""
    return sum(1 for b in beeps(states) if b >= at_least)


def hub_device(hub: Any, device_id: str) -> Any:
    from lerec.hub.db import Device

    async def q() -> Any:
        async with hub.service.sessions() as s:
            return await s.get(Device, device_id)

    return hub.call(q())


def hub_rejections(hub: Any) -> list[Any]:
    from lerec.hub.db import Rejection
    from sqlalchemy import select

    async def q() -> list[Any]:
        async with hub.service.sessions() as s:
            return list((await s.execute(select(Rejection).order_by(Rejection.id))).scalars())

    return hub.call(q())
