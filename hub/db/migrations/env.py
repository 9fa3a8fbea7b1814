"""alembic environment: runs on the connection handed in by astrago.hub.db.session."""
from alembic import context

from astrago.hub.db.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
