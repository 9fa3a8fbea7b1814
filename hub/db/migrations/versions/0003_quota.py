"""quota area: quotas, allocations, quota requests, admission lock

Revision ID: 0003
Revises: 0001 (its own branch: areas migrate independently; upgrade goes to "heads")
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = ("quota",)
depends_on = None


def upgrade():
    op.create_table(
        "quotas",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject_kind", sa.String(16), nullable=False),
        sa.Column("subject_name", sa.String(255), nullable=False),
        sa.Column("limits", sa.JSON, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.UniqueConstraint("subject_kind", "subject_name", name="uq_quota_subject"),
    )
    op.create_table(
        "allocations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_key", sa.String(255), nullable=False, unique=True),
        sa.Column("owner_kind", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("accounting_group", sa.String(255), nullable=False),
        sa.Column("slice", sa.String(64), nullable=False),
        sa.Column("units_num", sa.Integer, nullable=False),
        sa.Column("units_den", sa.Integer, nullable=False),
        sa.Column("cpu", sa.Float, nullable=False),
        sa.Column("memory_gib", sa.Float, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("placement", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("admitted_at", sa.DateTime, nullable=True),
        sa.Column("released_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_allocations_owner_id", "allocations", ["owner_id"])
    op.create_index("ix_allocations_user", "allocations", ["user"])
    op.create_index("ix_allocations_status", "allocations", ["status"])
    op.create_index("ix_allocations_created_at", "allocations", ["created_at"])
    op.create_table(
        "quota_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("requested", sa.JSON, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(255), nullable=False),
        sa.Column("decision_note", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("decided_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_quota_requests_user", "quota_requests", ["user"])
    op.create_table("admission_lock", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("INSERT INTO admission_lock (id) VALUES (1)")


def downgrade():
    for table in ("admission_lock", "quota_requests", "allocations", "quotas"):
        op.drop_table(table)
