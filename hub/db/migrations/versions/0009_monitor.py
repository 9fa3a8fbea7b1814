"""monitor area: its settings (reclaim policy) and idle-GPU tracks

Revision ID: 0009
Revises: 0001 (its own branch: areas migrate independently; upgrade goes to "heads")
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = ("monitor",)
depends_on = None


def upgrade():
    op.create_table(
        "monitor_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
    )
    op.create_table(
        "idle_tracks",
        sa.Column("allocation_id", sa.String(36), primary_key=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("slice", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("idle_since", sa.Float, nullable=True),
        sa.Column("last_reading_at", sa.Float, nullable=True),
        sa.Column("last_utilization", sa.Float, nullable=True),
        sa.Column("warned_at", sa.Float, nullable=True),
        sa.Column("reclaim_at", sa.Float, nullable=True),
        sa.Column("acted_at", sa.Float, nullable=True),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_idle_tracks_user", "idle_tracks", ["user"])
    op.create_index("ix_idle_tracks_state", "idle_tracks", ["state"])
    op.create_index("ix_idle_tracks_active", "idle_tracks", ["active"])


def downgrade():
    op.drop_table("idle_tracks")
    op.drop_table("monitor_settings")
