"""cases: party (当事人) accounts linked to their cases, persons a user is or represents,
state-secret clearance (第二十九条)

Revision ID: 0007_parties
Revises: 0005_cases
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from lerec.hub.db.types import UTCDateTime

revision = "0007_parties"
down_revision = "0005_cases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("cleared_state_secret", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("persons", sa.Text(), nullable=False, server_default="[]"))
    op.create_table(
        "case_parties",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("linked_by", sa.String(128), nullable=False),
        sa.Column("linked_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("case_id", "user_id", name="uq_case_parties"),
    )
    op.create_index("ix_case_parties_case_id", "case_parties", ["case_id"])
    op.create_index("ix_case_parties_user_id", "case_parties", ["user_id"])


def downgrade() -> None:
    op.drop_table("case_parties")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("persons")
        batch.drop_column("cleared_state_secret")
