"""teams area: teams (hub groups with a shared space) and dataset versions

Revision ID: 0016
Revises: 0001 (its own branch: areas migrate independently; upgrade goes to "heads")
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0001"
branch_labels = ("teams",)
depends_on = None


def upgrade():
    op.create_table(
        "teams",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("admins", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("synced_at", sa.DateTime, nullable=True),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("team", sa.String(64), nullable=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("source_path", sa.String(1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("deleted_at", sa.DateTime, nullable=True),
        sa.Column("deleted_by", sa.String(255), nullable=True),
        sa.UniqueConstraint("scope", "name", "version", name="uq_datasets_scope_name_version"),
    )
    op.create_index("ix_datasets_scope", "datasets", ["scope"])
    op.create_index("ix_datasets_team", "datasets", ["team"])


def downgrade():
    op.drop_index("ix_datasets_team", "datasets")
    op.drop_index("ix_datasets_scope", "datasets")
    op.drop_table("datasets")
    op.drop_table("teams")
