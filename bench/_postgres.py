"""What benchmarks over PostgreSQL share: the server's CPU time, a scratch schema."""

from __future__ import annotations

import os
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | str) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def postgres_cpu_s() -> float:
    """CPU seconds of every PostgreSQL server process on this machine (the server the
    bots use, and whatever else it serves meanwhile)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    total += cpu_s(entry.name)
            except OSError:
                continue  # gone meanwhile
    return total


def schema_url(server_url: str, schema: str) -> str:
    """``server_url`` with the log in ``schema``."""
    return f"{server_url}{'&' if '?' in server_url else '?'}schema={schema}"


def drop_schema(server_url: str, url: str) -> None:
    """Drop the schema of the log ``url`` on ``server_url``'s server."""
    import psycopg

    from eventstore.postgres.target import PostgresTarget

    with psycopg.connect(**PostgresTarget.parse(server_url).connect_kwargs(
            autocommit=True)) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{PostgresTarget.parse(url).schema}" CASCADE')
