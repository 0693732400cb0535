"""mi_gradient rows: the correlation of each row, and each estimate's dI/drho

Revision ID: 0012
Revises: 0006
Create Date: 2026-11-29

Issue 12: the mi_gradient test reports one row per correlation rho (Ratio.rho) and, per
seed, the estimated and analytic gradient (Estimate.rho, .gradient, .true_gradient). Rows
written before this revision have NULL there, which is what they mean (not a gradient row).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = {
    "estimates": ("rho", "gradient", "true_gradient"),
    "ratios": ("rho",),
}


def upgrade() -> None:
    for table, names in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name in names:
                batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    for table, names in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for name in names:
                batch.drop_column(name)
