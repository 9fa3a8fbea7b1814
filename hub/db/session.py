"""Engine, sessions and migrations for the service database.

sqlite by default (embedded mode), any SQLAlchemy URL otherwise (MariaDB via
PyMySQL in a cluster). Blocking database work runs in one worker thread so the
tornado event loop never waits on it; one thread also serialises sqlite writes.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # why: WAL lets readers run beside the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a crash never corrupts the database; a power cut may lose the last commits
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600)


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest migration (creates it on an empty database)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")  # areas migrate on their own branches


class Database:
    """Owns the engine, the session factory and the worker thread."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astrago-db")

    def migrate(self) -> None:
        upgrade_to_head(self.engine)

    @contextmanager
    def transaction(self):
        session: Session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def run_sync(self, fn, *args):
        """`fn(session, *args)` in one transaction, on the calling thread (start-up only)."""
        with self.transaction() as session:
            return fn(session, *args)

    async def run(self, fn, *args):
        """Run `fn(session, *args)` in one transaction on the database thread."""

        def _call():
            with self.transaction() as session:
                return fn(session, *args)

        return await asyncio.get_running_loop().run_in_executor(self._executor, _call)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
