"""plug-in estimators: what each worker has installed

Revision ID: 0013
Revises: 0004
Create Date: 2026-11-29

Issue 13 part 1: a worker reports the plug-in estimators it loaded (and those that failed
to load) in its row; the service lists them and accepts a plug-in's name only while a
live worker has it. Rows of workers started before this revision have NULL: no plug-ins.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plugins", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("plugins")
