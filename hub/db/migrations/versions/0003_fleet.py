"""fleet tables: device certificates, officer assignments, signed device configs

Revision ID: 0003_fleet
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from lerec.hub.db.types import UTCDateTime

revision = "0003_fleet"
down_revision = "0001"
branch_labels = ("fleet",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_certificates",
        sa.Column("serial", sa.String(64), primary_key=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("pem", sa.Text(), nullable=False),
    )
    op.create_index("ix_device_certificates_device_id", "device_certificates", ["device_id"])
    op.create_table(
        "officer_assignments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), nullable=False),
        sa.Column("officer_id", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime()),
        sa.Column("actor", sa.String(128), nullable=False),
    )
    op.create_index("ix_officer_assignments_device_id", "officer_assignments", ["device_id"])
    op.create_index("ix_officer_assignments_officer_id", "officer_assignments", ["officer_id"])
    op.create_table(
        "device_configs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), nullable=False),
        sa.Column("config_seq", sa.BigInteger(), nullable=False),
        sa.Column("officer_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("wire", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("device_id", "config_seq", name="uq_device_configs_seq"),
    )
    op.create_index("ix_device_configs_device_id", "device_configs", ["device_id"])


def downgrade() -> None:
    op.drop_table("device_configs")
    op.drop_table("officer_assignments")
    op.drop_table("device_certificates")
