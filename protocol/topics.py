"""MQTT topic names. A recorder publishes only under ``lerec/v1/dev/<its id>/`` and reads only
``lerec/v1/hub/<its id>/``; the broker ACL enforces this with ``%u`` patterns (the certificate
CN is the MQTT username) and the hub checks it again on every message."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import TopicError
from .schema import ID_PATTERN

ROOT = "lerec/v1"
DEVICE_KINDS = ("manifest", "chunk", "heartbeat")
HUB_KINDS = ("reply", "config")


def device_topic(device_id: str, kind: str) -> str:
    """Topic a recorder publishes ``kind`` messages on."""
    if kind not in DEVICE_KINDS:
        raise ValueError(f"unknown device topic kind {kind!r}")
    return f"{ROOT}/dev/{device_id}/{kind}"


def hub_topic(device_id: str, kind: str) -> str:
    """Topic the hub uses to talk to one recorder (``reply`` or retained ``config``)."""
    if kind not in HUB_KINDS:
        raise ValueError(f"unknown hub topic kind {kind!r}")
    return f"{ROOT}/hub/{device_id}/{kind}"


def hub_subscriptions(share_group: str | None = None) -> list[str]:
    """Filters the hub subscribes to (optionally as an MQTT v5 shared subscription)."""
    filters = [f"{ROOT}/dev/+/{kind}" for kind in DEVICE_KINDS]
    if share_group:
        filters = [f"$share/{share_group}/{f}" for f in filters]
    return filters


@dataclass(frozen=True)
class DeviceTopic:
    device_id: str
    kind: str


def parse_device_topic(topic: str) -> DeviceTopic:
    """Split a recorder topic into device id and kind, rejecting anything else."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{ROOT}/dev":
        raise TopicError(topic, "not a lerec recorder topic")
    device_id, kind = parts[3], parts[4]
    if not ID_PATTERN.match(device_id):
        raise TopicError(topic, "malformed device id")
    if kind not in DEVICE_KINDS:
        raise TopicError(topic, f"unknown kind {kind!r}")
    return DeviceTopic(device_id, kind)


def check_same_device(topic: DeviceTopic, claimed: str) -> None:
    """The device id inside a message must be the identity it arrived under."""
    if claimed != topic.device_id:
        raise TopicError(
            f"{ROOT}/dev/{topic.device_id}/{topic.kind}",
            f"message claims device {claimed!r} but arrived under {topic.device_id!r}",
        )
