"""audit log: entries, Merkle nodes, head, checkpoints; append-only enforced by triggers

Revision ID: 0002_audit
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from lerec.hub.db.types import UTCDateTime

revision = "0002_audit"
down_revision = "0001"
branch_labels = ("audit",)
depends_on = None

_SQLITE = [
    """CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER audit_entries_next_only BEFORE INSERT ON audit_entries
       WHEN NEW.idx != (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries)
       BEGIN SELECT RAISE(ABORT, 'audit entries must be appended in order'); END""",
    """CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
    """CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
       BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END""",
]

_PG = [
    """CREATE FUNCTION lerec_audit_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$ LANGUAGE plpgsql""",
    """CREATE FUNCTION lerec_audit_next_only() RETURNS trigger AS $$
       BEGIN
         IF NEW.idx <> (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_entries) THEN
           RAISE EXCEPTION 'audit entries must be appended in order';
         END IF;
         RETURN NEW;
       END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_entries_no_change BEFORE UPDATE OR DELETE OR TRUNCATE
       ON audit_entries FOR EACH STATEMENT EXECUTE FUNCTION lerec_audit_append_only()""",
    """CREATE TRIGGER audit_entries_next_only BEFORE INSERT ON audit_entries
       FOR EACH ROW EXECUTE FUNCTION lerec_audit_next_only()""",
    """CREATE TRIGGER audit_nodes_no_change BEFORE UPDATE OR DELETE OR TRUNCATE
       ON audit_nodes FOR EACH STATEMENT EXECUTE FUNCTION lerec_audit_append_only()""",
    """CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE OR TRUNCATE
       ON audit_checkpoints FOR EACH STATEMENT EXECUTE FUNCTION lerec_audit_append_only()""",
]


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_audit_entries_at", "audit_entries", ["at"])
    op.create_index("ix_audit_entries_type", "audit_entries", ["type"])
    op.create_index("ix_audit_entries_actor", "audit_entries", ["actor"])
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO audit_head (id, size) VALUES (1, 0)")
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.LargeBinary(), nullable=False),
    )
    dialect = op.get_bind().dialect.name
    for stmt in _PG if dialect == "postgresql" else _SQLITE if dialect == "sqlite" else []:
        op.execute(stmt)


def downgrade() -> None:
    raise RuntimeError("the audit log cannot be downgraded: it is append-only evidence")
