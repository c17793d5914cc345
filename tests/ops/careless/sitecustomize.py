"""Loaded into the ``personae run`` process of the redaction test (via PYTHONPATH): it
makes the two HTTP clients log every request's headers, as a careless dependency or a
debugging session would. The token (disnake's aiohttp requests) and the API key (the
openai SDK's httpx requests) then reach the logging system; redaction must remove them."""

import logging

import aiohttp
import httpx2

_log = logging.getLogger("careless.dependency")
_aiohttp_request = aiohttp.ClientSession._request
_httpx_send = httpx2.AsyncClient.send


async def _logged_aiohttp_request(self, method, url, **kwargs):
    _log.warning("aiohttp %s %s headers=%s", method, url, kwargs.get("headers"))
    return await _aiohttp_request(self, method, url, **kwargs)


async def _logged_httpx_send(self, request, **kwargs):
    _log.warning("httpx2 %s %s headers=%s", request.method, request.url, dict(request.headers))
    return await _httpx_send(self, request, **kwargs)


aiohttp.ClientSession._request = _logged_aiohttp_request
httpx2.AsyncClient.send = _logged_httpx_send
