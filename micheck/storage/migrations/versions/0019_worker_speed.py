"""each worker's measured speed and its box

Revision ID: 0019
Revises: 0014
Create Date: 2026-12-04

Issue 19: a worker measures its device at start (micheck.workers.calibrate: GMAC/s and the
fixed cost of a training step) and keeps the numbers in its row, where the service reads
them to estimate a request's time on the queue's devices (the per-request limit and the
job timeout). Rows of workers started before this revision have NULL: not measured, and
the service assumes the settings' throughput for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gmac_per_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("step_overhead_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("calibrated_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("calibration", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        for name in ("calibration", "calibrated_at", "step_overhead_s", "gmac_per_s"):
            batch_op.drop_column(name)
