"""trust: archives (case locks), archive counters, access requests, confidentiality marks

Revision ID: 0006_trust
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from lerec.hub.db.types import UTCDateTime

revision = "0006_trust"
down_revision = "0001"
branch_labels = ("trust",)
depends_on = None

_SQLITE = [
    """CREATE TRIGGER archives_no_update BEFORE UPDATE ON archives
       BEGIN SELECT RAISE(ABORT, 'an archived case stays archived'); END""",
    """CREATE TRIGGER archives_no_delete BEFORE DELETE ON archives
       BEGIN SELECT RAISE(ABORT, 'an archived case stays archived'); END""",
]
_PG = [
    """CREATE FUNCTION lerec_archives_permanent() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'an archived case stays archived'; END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER archives_no_change BEFORE UPDATE OR DELETE OR TRUNCATE
       ON archives FOR EACH STATEMENT EXECUTE FUNCTION lerec_archives_permanent()""",
]


def upgrade() -> None:
    op.create_table(
        "archives",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("archive_no", sa.String(128), nullable=False, unique=True),
        sa.Column("archived_at", UTCDateTime(), nullable=False),
        sa.Column("archived_by", sa.String(128), nullable=False),
        sa.Column("package_ref", sa.String(300), nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.Column("audit_idx", sa.BigInteger(), nullable=False),
        sa.Column("report_ok", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "archive_counters",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "access_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("requester_kind", sa.String(16), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("requested_until", UTCDateTime(), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", UTCDateTime()),
        sa.Column("decision_reason", sa.Text()),
        sa.Column("granted_scope", sa.Text()),
        sa.Column("granted_until", UTCDateTime()),
        sa.Column("revoked_by", sa.String(128)),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("revoke_reason", sa.Text()),
    )
    op.create_index("ix_access_requests_case_id", "access_requests", ["case_id"])
    op.create_index("ix_access_requests_requester", "access_requests", ["requester"])
    op.create_index("ix_access_requests_status", "access_requests", ["status"])
    op.create_table(
        "confidentiality_marks",
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("item", sa.String(200), primary_key=True),
        sa.Column("classes", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("marked_by", sa.String(128), nullable=False),
        sa.Column("marked_at", UTCDateTime(), nullable=False),
    )
    dialect = op.get_bind().dialect.name
    for stmt in _PG if dialect == "postgresql" else _SQLITE if dialect == "sqlite" else []:
        op.execute(stmt)


def downgrade() -> None:
    raise RuntimeError("archives cannot be downgraded: an archived case stays archived")
