"""fleet: the last heartbeat's state on the device row (fleet page: card full, uploads
pending, clock untrusted, battery, firmware)

Revision ID: 0009_device_status
Revises: 0003_fleet
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_device_status"
down_revision = "0003_fleet"
branch_labels = None
depends_on = None

COLUMNS = (
    ("hb_state", sa.String(16)),
    ("hb_storage", sa.String(8)),
    ("hb_free_bytes", sa.BigInteger()),
    ("hb_pending_segments", sa.Integer()),
    ("hb_pending_bytes", sa.BigInteger()),
    ("hb_battery_pct", sa.Integer()),
    ("hb_firmware", sa.String(64)),
    ("hb_clock_state", sa.String(16)),
    ("hb_clock_offset_ms", sa.BigInteger()),
)


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
