"""oversight: indexes for the incremental completeness checks

``segment_deletions (device_id, seq)``: the neighbours of a sequence number among the kept
manifests of deleted segments, and counts over a range of numbers.
``oversight_alerts (device_id, last_seq)``: the absent-number alerts of a device that overlap a
range of numbers (the ranges around a newly stored segment, the not-uploaded tail).

Revision ID: 0008_oversight_seq
Revises: 0004_oversight
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008_oversight_seq"
down_revision = "0004_oversight"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_segment_deletions_device_seq", "segment_deletions", ["device_id", "seq"])
    op.create_index("ix_oversight_alerts_device_last_seq", "oversight_alerts",
                    ["device_id", "last_seq"])


def downgrade() -> None:
    op.drop_index("ix_oversight_alerts_device_last_seq", table_name="oversight_alerts")
    op.drop_index("ix_segment_deletions_device_seq", table_name="segment_deletions")
