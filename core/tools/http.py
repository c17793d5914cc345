"""HTTP tools declared in a persona file.

The URL template's ``{argument}`` places are filled with the model's arguments,
URL-encoded (so an argument can never change the host or add a path); arguments the
URL does not use go in the query string (GET, DELETE) or a JSON body (POST, PUT,
PATCH). Header values name secrets as ``${ENV_NAME}``, read from the environment (or
.env) at call time. Secrets never leave this module: not in a log line, not in an
error, and not in the result, which has every secret value scrubbed from it (a
server may echo what it was sent). The response is read up to the declared cap
and within the declared timeout.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from ..credentials import Secrets
from ..gateway.model import ToolDefinition
from ..personas.model import Persona, ToolSpec
from .base import ToolContext, ToolError

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_SECRET = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SCRUBBED = "[redacted]"


def secret_names(spec: ToolSpec) -> list[str]:
    """The environment variables an HTTP tool's headers name."""
    if spec.http is None:
        return []
    return [m.group(1) for value in spec.http.headers.values() for m in _SECRET.finditer(value)]


def persona_secret_names(personas: Iterable[Persona]) -> list[str]:
    """Every environment variable the personas' HTTP tools name (for log redaction)."""
    return sorted({name for persona in personas for spec in persona.tools.entries
                   for name in secret_names(spec)})


class HttpTool:
    """One HTTP tool (see the module docstring)."""

    def __init__(self, spec: ToolSpec, secrets: Secrets,
                 session: Callable[[], aiohttp.ClientSession]) -> None:
        assert spec.http is not None
        self._spec = spec
        self._http = spec.http
        self._secrets = secrets
        self._session = session

    @property
    def definition(self) -> ToolDefinition:
        """As declared in the persona file."""
        return ToolDefinition(name=self._spec.name, description=self._spec.description,
                              parameters=self._spec.parameters)

    async def call(self, arguments: Mapping[str, Any], context: ToolContext) -> str:
        """The response body (text, cut at the cap), or a ToolError for HTTP errors."""
        http = self._http
        used = set(_PLACEHOLDER.findall(http.url))
        url = _PLACEHOLDER.sub(lambda m: quote(_plain(arguments.get(m.group(1), "")), safe=""),
                               http.url)
        rest = {k: v for k, v in arguments.items() if k not in used}
        body: Any = None
        if http.method in _BODY_METHODS:
            body = rest
        elif rest:
            url += ("&" if "?" in url else "?") + urlencode(
                {k: _plain(v) for k, v in rest.items()})
        headers, secrets = self._headers()
        try:
            async with self._session().request(
                    http.method, url, headers=headers, json=body, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=http.timeout_s)) as response:
                raw = await response.content.read(http.max_response_bytes + 1)
                status = response.status
                charset = response.charset or "utf-8"
        except TimeoutError:
            raise ToolError(f"{self._spec.name} did not answer within "
                            f"{http.timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise ToolError(f"{self._spec.name} could not be reached "
                            f"({type(exc).__name__})") from None
        cut = len(raw) > http.max_response_bytes
        text = _scrub(raw[:http.max_response_bytes].decode(charset, errors="replace"), secrets)
        log.info("tool %s: %s %s answered HTTP %d (%d bytes%s)", self._spec.name, http.method,
                 _scrub(url, secrets), status, len(raw), ", cut" if cut else "")
        if status >= 400:
            raise ToolError(f"{self._spec.name} answered HTTP {status}: {text[:300]}")
        if cut:
            text += f"\n[… cut at {http.max_response_bytes} bytes]"
        return text

    def _headers(self) -> tuple[dict[str, str], list[str]]:
        headers: dict[str, str] = {}
        values: list[str] = []
        missing: list[str] = []

        def secret(match: re.Match[str]) -> str:
            value = self._secrets.get(match.group(1))
            if value is None:
                missing.append(match.group(1))
                return ""
            values.append(value)
            return value

        for name, template in self._http.headers.items():
            headers[name] = _SECRET.sub(secret, template)
        if missing:
            raise ToolError(f"{self._spec.name} is not set up: the environment variable "
                            f"{missing[0]} is not set")
        return headers, values


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _scrub(text: str, secrets: list[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, SCRUBBED)
    return text
