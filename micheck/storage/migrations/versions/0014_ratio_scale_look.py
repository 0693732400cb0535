"""verdicts v3: each ratio row records its interval's scale and the look that decided it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

Issue 18: a log-scale interval for ratios of two estimates, alpha spent over looks, and
decisions final once taken. `scale` is linear | log (NULL: rows stored before, linear);
`look` is the 1-based look of the adaptive seed rule at which the row was decided (or last
judged, if still inconclusive); NULL before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ratios", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scale", sa.String(8), nullable=True))
        batch_op.add_column(sa.Column("look", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ratios", schema=None) as batch_op:
        batch_op.drop_column("look")
        batch_op.drop_column("scale")
