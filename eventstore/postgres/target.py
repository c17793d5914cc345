"""Which PostgreSQL log a URL names, and how to say where it is without its password.

``postgresql://user@host:5432/dbname?schema=personae&sslmode=require``: every libpq
parameter may be given in the query; ``schema`` (default ``public``) is ours and names the
PostgreSQL schema that holds the log, so several bots (or tests) can share one database.
The password is best given apart (``database.password_env`` names the variable holding
it); one written into the URL is taken out of it and never shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..errors import StoreOpenError

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "public"
CONNECT_TIMEOUT_S = 10
"""How long opening a connection may take unless the URL says otherwise (``connect_timeout``)."""

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresTarget:
    """A parsed ``postgresql://`` URL: libpq's parameters (without the password), the
    schema, and the password apart (never in ``repr``)."""

    params: Mapping[str, str]
    schema: str
    location: str
    password: str | None = field(default=None, repr=False)
    hidden: tuple[str, ...] = field(default=(), repr=False)
    """Every form of password the URL and the caller gave, for redaction."""

    @classmethod
    def parse(cls, url: str, *, password: str | None = None) -> PostgresTarget:
        """Parse ``url``; ``password`` (from the environment) wins over one in the URL.

        Raises :class:`StoreOpenError` with one sentence, and no password, when the URL
        is not a PostgreSQL URL libpq accepts or names a schema we cannot use.
        """
        inline = _url_password(url)
        secrets = [s for s in (password, inline) if s]
        try:
            parts = urlsplit(url)
            if parts.scheme not in SCHEMES:
                raise StoreOpenError(f"{redact(url, secrets)} is not a postgresql:// URL")
            query = parse_qsl(parts.query, keep_blank_values=True)
            schema = next((v for k, v in query if k == "schema"), DEFAULT_SCHEMA)
            rest = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query
                                                             if k != "schema"])))
            params: dict[str, str] = {k: str(v) for k, v in conninfo_to_dict(rest).items()}
        except psycopg.ProgrammingError as exc:
            reason = next((line for line in str(exc).splitlines() if line.strip()), "")
            raise StoreOpenError(f"{redact(url, secrets)} is not a valid PostgreSQL URL: "
                                 f"{redact(reason.strip(), secrets)}") from None
        except ValueError as exc:
            raise StoreOpenError(f"{redact(url, secrets)} is not a valid URL ({exc})") from None
        if not _SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_"):
            raise StoreOpenError(
                f"schema={schema!r} in {redact(url, secrets)} cannot hold a log: use lower-case "
                "letters, digits and _ (at most 63, not starting with a digit or pg_)")
        found = params.pop("password", None)
        if found:
            secrets.append(found)
        params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
        return cls(params=params, schema=schema,
                   location=redact(_location(params, schema), secrets),
                   password=password or found, hidden=tuple(secrets))

    def connect_kwargs(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect``: the URL's parameters, the password
        and ``extra``."""
        kwargs: dict[str, Any] = dict(self.params)
        if self.password:
            kwargs["password"] = self.password
        for name, value in extra.items():
            if name == "options" and kwargs.get("options"):
                kwargs["options"] = f"{kwargs['options']} {value}"
            elif name != "application_name" or name not in kwargs:  # the URL's name wins
                kwargs[name] = value
        return kwargs

    @property
    def conninfo(self) -> str:
        """The parameters as a libpq connection string, without the password."""
        return make_conninfo("", **self.params)

    def redact(self, text: str) -> str:
        """``text`` with the password, wherever it appears, replaced by ``***``."""
        return redact(text, list(self.hidden))


def redact(text: str, secrets: list[str]) -> str:
    """``text`` without ``secrets`` (nor their URL-quoted forms)."""
    for secret in secrets:
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, "***")
    return text


def _url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _location(params: Mapping[str, str], schema: str) -> str:
    user = params.get("user", "")
    host = params.get("host", "")
    port = params.get("port", "")
    netloc = f"{quote(user, safe='')}@" if user else ""
    netloc += f"[{host}]" if ":" in host and "," not in host else quote(host, safe=",/")
    if port:
        netloc += f":{port}"
    dbname = quote(params.get("dbname", ""), safe="")
    return f"postgresql://{netloc}/{dbname}?schema={schema}"
