"""The PostgreSQL backend: one log shared by several processes (see ``docs/eventstore.md``)."""

from .log import PostgresLog
from .schema import SCHEMA_VERSION
from .target import PostgresTarget

__all__ = ["SCHEMA_VERSION", "PostgresLog", "PostgresTarget"]
