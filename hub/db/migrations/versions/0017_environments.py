"""environments area: the catalogue of environments (Python environments, container images)

Revision ID: 0017_environments
Revises: 0001 (its own branch: areas migrate independently; upgrade goes to "heads")
"""
import sqlalchemy as sa
from alembic import op

revision = "0017_environments"
down_revision = "0001"
branch_labels = ("environments",)
depends_on = None


def upgrade():
    op.create_table(
        "environments",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("packages", sa.JSON, nullable=False),
        sa.Column("teams", sa.JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("prefix", sa.String(1024), nullable=True),
        sa.Column("image", sa.String(512), nullable=True),
        sa.Column("pull_policy", sa.String(16), nullable=True),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("step_title", sa.String(255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )


def downgrade():
    op.drop_table("environments")
