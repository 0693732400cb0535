"""more seeds for a finished evaluation: the evaluation a new one extends

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07

Issue 18: `POST /v1/evaluations/{id}/seeds` makes a new evaluation that trains only new
seeds and pools them with the stored estimates of `{id}` (one more look). `extends` names
that evaluation; NULL for every evaluation submitted as a spec. Extensions are never
deduplicated against, and an evaluation is extended at most once (a chain of looks).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extends", sa.String(32), nullable=True))
        batch_op.create_index("ix_evaluations_extends", ["extends"])


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_extends")
        batch_op.drop_column("extends")
