"""oversight: holds (保全) that keep a segment from retention deletion, and an index on
``segment_deadlines.ended_at`` (the 近 90 日逾期上传 list and the recomputation after a
calendar edit select by recording end)

Revision ID: 0010_oversight_holds
Revises: 0008_oversight_seq
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from lerec.hub.db.types import UTCDateTime

revision = "0010_oversight_holds"
down_revision = "0008_oversight_seq"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_holds",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("segment_id", sa.String(64), sa.ForeignKey("segments.segment_id"),
                  nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(128), nullable=False),
        sa.Column("placed_at", UTCDateTime(), nullable=False),
        sa.Column("released_at", UTCDateTime()),
        sa.Column("released_by", sa.String(128)),
        sa.Column("release_reason", sa.Text()),
    )
    op.create_index("ix_segment_holds_segment_id", "segment_holds", ["segment_id"])
    op.create_index("ix_segment_deadlines_ended_at", "segment_deadlines", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_segment_deadlines_ended_at", table_name="segment_deadlines")
    op.drop_index("ix_segment_holds_segment_id", table_name="segment_holds")
    op.drop_table("segment_holds")
