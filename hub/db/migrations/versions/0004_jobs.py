"""jobs area: jobs, job events, job definitions

Revision ID: 0004
Revises: 0001 (its own branch: areas migrate independently; upgrade goes to "heads")
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = ("jobs",)
depends_on = None


def upgrade():
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("workdir", sa.Text, nullable=False),
        sa.Column("slice", sa.String(64), nullable=False),
        sa.Column("cpu", sa.Float, nullable=False),
        sa.Column("memory_gib", sa.Float, nullable=False),
        sa.Column("image", sa.String(512), nullable=False),
        sa.Column("env", sa.JSON, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("max_runtime_s", sa.Float, nullable=True),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("executor", sa.String(16), nullable=False),
        sa.Column("process", sa.JSON, nullable=False),
        sa.Column("allocation_id", sa.String(36), nullable=True),
        sa.Column("log_path", sa.Text, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("definition_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("queued_at", sa.DateTime, nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_jobs_owner", "jobs", ["owner"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_allocation_id", "jobs", ["allocation_id"])
    op.create_index("ix_jobs_definition_id", "jobs", ["definition_id"])
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.create_table(
        "job_definitions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("schedule", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("next_run_at", sa.DateTime, nullable=True),
        sa.Column("last_run_at", sa.DateTime, nullable=True),
        sa.Column("last_job_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_job_definitions_owner", "job_definitions", ["owner"])
    op.create_index("ix_job_definitions_next_run_at", "job_definitions", ["next_run_at"])


def downgrade():
    for table in ("job_definitions", "job_events", "jobs"):
        op.drop_table(table)
