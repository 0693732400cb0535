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


def ratio_columns() -> list[sa.Column]:
    return [
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


def estimate_columns() -> list[sa.Column]:
    return [
        sa.Column("curve", sa.JSON(), nullable=True),
        sa.Column("converged", sa.Boolean(), nullable=True),
        sa.Column("convergence", sa.Text(), nullable=False, server_default=""),
    ]


def result_columns() -> list[sa.Column]:
    return [
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("alpha", sa.Float(), nullable=True),
        sa.Column("seed_rounds", sa.JSON(), nullable=True),
    ]


def upgrade() -> None:
    for table, columns in (("ratios", ratio_columns()), ("estimates", estimate_columns()),
                           ("results", result_columns())):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(column)
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("verdict", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("verdict")
    for table, columns in (("ratios", ratio_columns()), ("estimates", estimate_columns()),
                           ("results", result_columns())):
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_column(column.name)
