"""jobs area: jobs.client_key, the idempotency key of a submission (a retry returns the same job)

Revision ID: 0011
Revises: 0010 (the jobs branch)
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("client_key", sa.String(255), nullable=True))
        batch.create_unique_constraint("uq_jobs_owner_client_key", ["owner", "client_key"])


def downgrade():
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_owner_client_key", type_="unique")
        batch.drop_column("client_key")
