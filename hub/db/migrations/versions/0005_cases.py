"""cases: users, web sessions, cases, members, records and their versions, approvals,
attachments, stage changes, clip transcripts

Revision ID: 0005_cases
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from lerec.hub.db.types import UTCDateTime

revision = "0005_cases"
down_revision = "0001"
branch_labels = ("cases",)
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "users",
        _id(),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("officer_id", sa.String(64)),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("password_changed_at", UTCDateTime()),
    )
    op.create_index("ix_users_role", "users", ["role"])
    op.create_index("ix_users_officer_id", "users", ["officer_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.create_table(
        "cases",
        _id(),
        sa.Column("case_no", sa.String(64), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("party", sa.String(200), nullable=False),
        sa.Column("enforcement_type", sa.String(32), nullable=False),
        sa.Column("start_mode", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("not_started", sa.Boolean(), nullable=False),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("handler_id", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("execution_ended_at", UTCDateTime()),
        sa.Column("archived_at", UTCDateTime()),
        sa.Column("archive_deadline", UTCDateTime()),
        sa.Column("finding_errors", sa.Integer(), nullable=False),
        sa.Column("finding_warnings", sa.Integer(), nullable=False),
        sa.Column("findings_at", UTCDateTime()),
    )
    for col in ("enforcement_type", "stage", "handler_id", "created_at", "finding_errors"):
        op.create_index(f"ix_cases_{col}", "cases", [col])
    op.create_table(
        "case_members",
        _id(),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.UniqueConstraint("case_id", "user_id", name="uq_case_members"),
    )
    op.create_index("ix_case_members_case_id", "case_members", ["case_id"])
    op.create_index("ix_case_members_user_id", "case_members", ["user_id"])
    op.create_table(
        "case_stage_changes",
        _id(),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("from_stage", sa.String(32), nullable=False),
        sa.Column("to_stage", sa.String(32), nullable=False),
        sa.Column("by_user", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_case_stage_changes_case_id", "case_stage_changes", ["case_id"])
    op.create_table(
        "case_records",
        _id(),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("kind_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("window_start", UTCDateTime()),
        sa.Column("window_end", UTCDateTime()),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_case_records_case_id", "case_records", ["case_id"])
    op.create_index("ix_case_records_window_start", "case_records", ["window_start"])
    op.create_table(
        "case_record_versions",
        _id(),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("case_records.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.UniqueConstraint("record_id", "version", name="uq_record_versions"),
    )
    op.create_index("ix_case_record_versions_record_id", "case_record_versions", ["record_id"])
    op.create_table(
        "case_approvals",
        _id(),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("case_records.id")),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("opinion", sa.Text(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_case_approvals_case_id", "case_approvals", ["case_id"])
    op.create_table(
        "case_attachments",
        _id(),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("case_records.id")),
        sa.Column("blob_ref", sa.String(80), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("made_at", UTCDateTime()),
        sa.Column("maker", sa.String(100), nullable=False),
        sa.Column("proves", sa.Text(), nullable=False),
        sa.Column("transcript", sa.Text()),
        sa.Column("transcript_source", sa.String(64)),
        sa.Column("uploaded_by", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_case_attachments_case_id", "case_attachments", ["case_id"])
    op.create_index("ix_case_attachments_record_id", "case_attachments", ["record_id"])
    op.create_table(
        "clip_transcripts",
        sa.Column("segment_id", sa.String(64), sa.ForeignKey("segments.segment_id"),
                  primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("by_actor", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "clip_transcripts", "case_attachments", "case_approvals", "case_record_versions",
        "case_records", "case_stage_changes", "case_members", "cases", "web_sessions", "users",
    ):
        op.drop_table(table)
