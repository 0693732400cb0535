"""three-valued verdicts: bands, decided intervals, reasons; training curves; seed rounds

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Rows written before this revision keep their numbers; their verdict is NULL and is read
as "inconclusive (legacy)": those verdicts compared the mean with the tolerance and ignored
the interval, so they are never shown as a pass.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RATIO_COLUMNS = [
    sa.Column("kind", sa.String(length=16), nullable=False, server_default="ratio"),
    sa.Column("t_from", sa.Integer(), nullable=True),
    sa.Column("verdict", sa.String(length=16), nullable=True),
    sa.Column("band_low", sa.Float(), nullable=True),
    sa.Column("band_high", sa.Float(), nullable=True),
    sa.Column("ci_level", sa.Float(), nullable=True),
    sa.Column("ci_method", sa.String(length=100), nullable=True),
    sa.Column("reason_code", sa.String(length=32), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False, server_default=""),
    sa.Column("seeds", sa.Integer(), nullable=False, server_default="0"),
]
ESTIMATE_COLUMNS = [
    sa.Column("curve", sa.JSON(), nullable=True),
    sa.Column("converged", sa.Boolean(), nullable=True),
    sa.Column("convergence", sa.Text(), nullable=False, server_default=""),
]
RESULT_COLUMNS = [
    sa.Column("verdict", sa.String(length=16), nullable=True),
    sa.Column("alpha", sa.Float(), nullable=True),
    sa.Column("seed_rounds", sa.JSON(), nullable=True),
]


def upgrade() -> None:
    for table, columns in (("ratios", RATIO_COLUMNS), ("estimates", ESTIMATE_COLUMNS),
                           ("results", RESULT_COLUMNS)):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(column.copy())
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("verdict", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("verdict")
    for table, columns in (("ratios", RATIO_COLUMNS), ("estimates", ESTIMATE_COLUMNS),
                           ("results", RESULT_COLUMNS)):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
