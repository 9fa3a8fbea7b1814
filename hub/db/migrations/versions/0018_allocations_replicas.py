"""quota area: allocations.replicas, a gang's replicas (each on its own slice, admitted all or none)

Revision ID: 0018_allocations_replicas
Revises: 0003 (the quota branch)
"""
import sqlalchemy as sa
from alembic import op

revision = "0018_allocations_replicas"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("allocations") as batch:
        batch.add_column(sa.Column("replicas", sa.Integer, nullable=False, server_default="1"))


def downgrade():
    with op.batch_alter_table("allocations") as batch:
        batch.drop_column("replicas")
