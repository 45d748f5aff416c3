"""The ``[oversight]`` section of hub.toml: retention period (in months or days), approvals,
upload deadlines; it becomes the OversightSettings both the ingest daemon and the admin
service use, and a bad value is refused with a readable error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from lerec.hub.config import HubConfig, OversightConfig, months_to_days
from lerec.hub.errors import ConfigError
from lerec.hub.oversight.settings import DEFAULT_SETTINGS

BASE = """
database_url = "sqlite:///hub.db"
storage_dir = "store"
signing_key = "keys/signing.key"
box_key = "keys/box.key"

[broker]
ca = "pki/ca.crt"
cert = "pki/hub.crt"
key = "pki/hub.key"
"""


def write(tmp_path: Path, oversight: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(BASE + "\n[oversight]\n" + oversight, encoding="utf-8")
    return path


def test_without_the_section_the_defaults_apply(tmp_path):
    cfg = HubConfig.load(write(tmp_path, ""))
    assert cfg.oversight.settings() == DEFAULT_SETTINGS
    assert cfg.oversight.keep_unlinked_for == dt.timedelta(days=184)


def test_months_are_counted_as_the_longest_such_span():
    assert months_to_days(6) == 184  # 1 July -> 1 January, the policy's default
    assert months_to_days(1) == 31
    assert months_to_days(12) == 366
    assert months_to_days(3) == 92


def test_values_parse_into_the_oversight_settings(tmp_path):
    cfg = HubConfig.load(write(tmp_path, """
retention_months = 12
required_approvals = 3
officer_may_approve = true
upload_working_days = 3
at_risk_hours = 12
not_uploaded_grace_hours = 0.5
link_tolerance_minutes = 10
"""))
    s = cfg.oversight.settings()
    assert s.keep_unlinked_for == dt.timedelta(days=366)
    assert (s.required_approvals, s.officer_may_approve, s.upload_working_days) == (3, True, 3)
    assert s.at_risk_within == dt.timedelta(hours=12)
    assert s.not_uploaded_grace == dt.timedelta(minutes=30)
    assert s.link_tolerance == dt.timedelta(minutes=10)
    assert s.retention_policy().required_approvals == 3

    days = HubConfig.load(write(tmp_path, "retention_days = 200\n")).oversight.settings()
    assert days.keep_unlinked_for == dt.timedelta(days=200)


@pytest.mark.parametrize(("body", "expected"), [
    ("required_approvals = 1\n", "required_approvals"),
    ("retention_months = 0\n", "retention_months"),
    ("retention_days = -5\n", "retention_days"),
    ("retention_months = 6\nretention_days = 200\n", "either retention_months or retention_days"),
    ("upload_working_days = 0\n", "upload_working_days"),
    ("retention = 6\n", "retention"),
    ('retention_months = "six"\n', "retention_months"),
])
def test_bad_values_are_refused_with_a_readable_error(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as exc:
        HubConfig.load(path)
    message = str(exc.value)
    assert str(path) in message and "oversight" in message and expected in message


def test_the_section_is_documented_field_by_field():
    for name, field in OversightConfig.model_fields.items():
        assert field.description, name
    assert HubConfig.model_fields["oversight"].description


def test_lerec_admin_reads_the_same_section(tmp_path):
    """``lerec-admin --config hub.toml`` takes the hub's retention period and blob store."""
    import argparse

    from lerec.hub.admin.__main__ import _settings

    path = write(tmp_path, "retention_days = 30\n")
    args = argparse.Namespace(config=path, database_url=None, storage_dir=None)
    settings = _settings(args)
    assert settings.oversight.keep_unlinked_for == dt.timedelta(days=30)
    assert settings.storage is not None and settings.storage.backend == "local"


def test_the_scale_out_example_carries_the_section():
    example = Path(__file__).resolve().parents[2] / "deploy/scaleout/hub-worker.toml.example"
    cfg = HubConfig.load(example)
    assert "oversight" in cfg.model_fields_set
    assert cfg.oversight.settings() == DEFAULT_SETTINGS
