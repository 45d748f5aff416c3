"""oversight: alerts, seq reports, upload deadlines, calendar, segment links, retention

Revision ID: 0004_oversight
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from lerec.hub.db.types import UTCDateTime

revision = "0004_oversight"
down_revision = "0001"
branch_labels = ("oversight",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oversight_alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("dedup_key", sa.String(200), nullable=False, unique=True),
        sa.Column("device_id", sa.String(64)),
        sa.Column("officer_ids", sa.String(400), nullable=False),
        sa.Column("window_start", UTCDateTime()),
        sa.Column("window_end", UTCDateTime()),
        sa.Column("first_seq", sa.BigInteger()),
        sa.Column("last_seq", sa.BigInteger()),
        sa.Column("segment_id", sa.String(64)),
        sa.Column("message_zh", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("resolved_by", sa.String(128)),
        sa.Column("resolved_note", sa.Text()),
    )
    op.create_index("ix_oversight_alerts_kind", "oversight_alerts", ["kind"])
    op.create_index("ix_oversight_alerts_created_at", "oversight_alerts", ["created_at"])
    op.create_index("ix_oversight_alerts_resolved_at", "oversight_alerts", ["resolved_at"])
    op.create_index("ix_oversight_alerts_device_kind", "oversight_alerts", ["device_id", "kind"])

    op.create_table(
        "oversight_seq_reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("reported_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("device_id", "last_seq", name="uq_seq_reports"),
    )
    op.create_index("ix_oversight_seq_reports_device_id", "oversight_seq_reports", ["device_id"])

    op.create_table(
        "segment_deadlines",
        sa.Column("segment_id", sa.String(64), sa.ForeignKey("segments.segment_id"),
                  primary_key=True),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
        sa.Column("deadline", UTCDateTime()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("deadline_error", sa.Text()),
        sa.Column("error_year", sa.Integer()),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_segment_deadlines_deadline", "segment_deadlines", ["deadline"])
    op.create_index("ix_segment_deadlines_status", "segment_deadlines", ["status"])
    op.create_index("ix_segment_deadlines_error_year", "segment_deadlines", ["error_year"])

    op.create_table(
        "calendar_overrides",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("working", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "calendar_years",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
    )

    op.create_table(
        "segment_links",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("segment_id", sa.String(64), sa.ForeignKey("segments.segment_id"),
                  nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("step_id", sa.String(128), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("removed_at", UTCDateTime()),
        sa.Column("removed_by", sa.String(128)),
        sa.Column("removed_reason", sa.Text()),
        sa.CheckConstraint("method IN ('auto', 'manual')", name="ck_segment_links_method"),
    )
    op.create_index("ix_segment_links_segment_id", "segment_links", ["segment_id"])
    op.create_index("ix_segment_links_case_id", "segment_links", ["case_id"])
    op.create_index(
        "uq_segment_links_active", "segment_links", ["segment_id", "case_id", "step_id"],
        unique=True, sqlite_where=sa.text("removed_at IS NULL"),
        postgresql_where=sa.text("removed_at IS NULL"),
    )

    op.create_table(
        "deletion_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("segment_id", sa.String(64), sa.ForeignKey("segments.segment_id"),
                  nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("closed_at", UTCDateTime()),
    )
    op.create_index("ix_deletion_requests_segment_id", "deletion_requests", ["segment_id"])
    op.create_table(
        "deletion_approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("deletion_requests.id"),
                  nullable=False),
        sa.Column("approver", sa.String(128), nullable=False),
        sa.Column("approved_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.UniqueConstraint("request_id", "approver", name="uq_deletion_approver"),
    )
    op.create_index("ix_deletion_approvals_request_id", "deletion_approvals", ["request_id"])
    op.create_table(
        "segment_deletions",
        sa.Column("segment_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("deletion_requests.id"),
                  nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("officer_id", sa.String(64), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stored_ref", sa.String(128), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("manifest_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("approved_by", sa.String(400), nullable=False),
        sa.Column("deleted_by", sa.String(128), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=False),
        sa.Column("blob_deleted_at", UTCDateTime()),
        sa.Column("blob_note", sa.Text(), nullable=False),
    )
    op.create_index("ix_segment_deletions_device_id", "segment_deletions", ["device_id"])


def downgrade() -> None:
    for table in (
        "segment_deletions", "deletion_approvals", "deletion_requests", "segment_links",
        "calendar_years", "calendar_overrides", "segment_deadlines", "oversight_seq_reports",
        "oversight_alerts",
    ):
        op.drop_table(table)
