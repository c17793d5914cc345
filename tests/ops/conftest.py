"""Shared helpers for the operations tests: small HTTP servers, set-ups on disk,
read-only directories."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from aiohttp import web

GOOD_PERSONA = """id: ada
name: Ada
model: {provider: fake, name: fake-model}
prompt:
  system: You are Ada.
"""


def bot_token(user_id: int = 1181818181818181818) -> str:
    """A value shaped like a real bot token (never a real one)."""
    first = base64.urlsafe_b64encode(str(user_id).encode()).decode().rstrip("=")
    return f"{first}.GhIjKl.{'x' * 6}{'AbCdEfGhIjKlMnOpQrStUvWxYz0123'}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def http_server(routes: dict[str, Handler]) -> AsyncIterator[str]:
    """A tiny aiohttp server on 127.0.0.1 serving GET ``routes``; yields its base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_setup(folder: Path, *, discord_url: str, providers: str, persona: str = GOOD_PERSONA,
                extra: str = "") -> Path:
    """A config.yaml with one persona in ``folder``; returns the config path."""
    (folder / "personas").mkdir(exist_ok=True)
    (folder / "personas" / "ada.yaml").write_text(persona)
    config = folder / "config.yaml"
    config.write_text(
        "database: {path: data/log.db, synchronous: normal}\n"
        "personas: {dir: personas}\n"
        f"discord: {{api_base_url: '{discord_url}', token_env: TEST_DISCORD_TOKEN}}\n"
        f"providers:\n{providers}" + extra)
    return config


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` read-only for this process, even as root (a read-only bind mount)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)
