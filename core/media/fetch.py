"""Downloading an attachment: only from the allowed hosts, within a size cap and a
deadline, never following redirects elsewhere."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

_CHUNK = 64 * 1024


class FetchRefused(Exception):
    """The file was not downloaded; the message is the reason, for the log and the prompt."""


async def fetch_bytes(session: aiohttp.ClientSession, url: str, *, max_bytes: int,
                      timeout_s: float, hosts: frozenset[str]) -> bytes:
    """The body at ``url`` (raises :class:`FetchRefused` with the reason)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("not an http(s) link")
    if parts.hostname not in hosts:
        raise FetchRefused(f"{parts.hostname} is not an allowed attachment host")
    try:
        async with session.get(url, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status in (403, 404, 410):
                raise FetchRefused(f"the link has expired or the file is gone "
                                   f"(HTTP {response.status})")
            if response.status != 200:
                raise FetchRefused(f"the download failed (HTTP {response.status})")
            if response.content_length is not None and response.content_length > max_bytes:
                raise FetchRefused(f"over the size cap ({response.content_length} bytes)")
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise FetchRefused("over the size cap")
            return bytes(body)
    except TimeoutError:
        raise FetchRefused(f"the download took longer than {timeout_s:g} s") from None
    except aiohttp.ClientError as exc:
        raise FetchRefused(f"the download failed ({type(exc).__name__})") from None
