"""suites: a suite's definition as stored on first use

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07

Issue 21: the league table reports each (estimator config, suite point) from stored
results, and the suite's points themselves are stored data: the definition of
(name, version) is written the first time the suite is used and read back from here,
never recomputed from the code of the day (micheck.suites, micheck.storage.suites).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suites",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )


def downgrade() -> None:
    op.drop_table("suites")
