"""ingest tables: devices, segments, rejections

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from lerec.hub.db.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("signing_key", sa.LargeBinary(32), nullable=False),
        sa.Column("cert_serial", sa.String(64)),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("officer_id", sa.String(64), nullable=False, server_default="unassigned"),
        sa.Column("enrolled_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("last_seen_at", UTCDateTime()),
        sa.Column("last_seq_reported", sa.BigInteger()),
    )
    op.create_table(
        "segments",
        sa.Column("segment_id", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("officer_id", sa.String(64), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("important", sa.Boolean(), nullable=False),
        sa.Column("recovered", sa.Boolean(), nullable=False),
        sa.Column("clock_state", sa.String(16), nullable=False),
        sa.Column("clock_offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("manifest_hash", sa.LargeBinary(32), nullable=False, unique=True),
        sa.Column("receipt", sa.LargeBinary(), nullable=False),
        sa.Column("stored_ref", sa.String(128), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("device_id", "seq", name="uq_segments_device_seq"),
    )
    op.create_index("ix_segments_device_id", "segments", ["device_id"])
    op.create_index("ix_segments_officer_id", "segments", ["officer_id"])
    op.create_index("ix_segments_start_at", "segments", ["start_at"])
    op.create_index("ix_segments_sha256", "segments", ["sha256"])
    op.create_table(
        "rejections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("segment_id", sa.String(128), nullable=False),
        sa.Column("topic", sa.String(300), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_rejections_at", "rejections", ["at"])


def downgrade() -> None:
    op.drop_table("rejections")
    op.drop_table("segments")
    op.drop_table("devices")
