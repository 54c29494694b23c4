"""Alembic environment: the URL comes from the caller (shared.store.migrate), never from a file."""

from alembic import context

from shared.store.db import engine_for
from shared.store.models import POSTGRESQL_ONLY_INDEXES, Base

config = context.config


def _include(obj, name, type_, reflected, compare_to) -> bool:
    # Indexes only PostgreSQL has (a trigram index) are the migrations', not the models'.
    return not (type_ == "index" and name in POSTGRESQL_ONLY_INDEXES)


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    with engine_for(url).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=_include,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
