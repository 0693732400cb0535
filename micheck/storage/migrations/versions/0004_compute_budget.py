"""compute budget: each evaluation's estimated cost, per-token budget overrides

Revision ID: 0004
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0012"  # after main's 0002 and 0006; re-chain at merge
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost_gmac", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cost", sa.JSON(), nullable=True))
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_queued", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_request_gmac", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_token_gmac", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("max_token_gmac")
        batch_op.drop_column("max_request_gmac")
        batch_op.drop_column("max_queued")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_column("cost")
        batch_op.drop_column("cost_gmac")
