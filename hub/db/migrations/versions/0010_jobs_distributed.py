"""jobs area: jobs.distributed (a PyTorchJob's framework and worker count, cluster mode)

Revision ID: 0010
Revises: 0004 (the jobs branch)
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("distributed", sa.JSON, nullable=True))


def downgrade():
    op.drop_column("jobs", "distributed")
