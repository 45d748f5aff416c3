"""Alembic environment. lerec runs migrations in-process (``lerec.hub.db.engine.migrate``)
with a connection handed over in ``config.attributes``; the ``alembic`` CLI also works with
``-x url=...``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from lerec.hub.db.models import Base

target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
