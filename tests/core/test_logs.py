"""Log lines never carry a secret, in text or JSON format."""

from __future__ import annotations

import io
import json
import logging

from core.logs import REDACTED, setup_logging

# Built at run time so no token-shaped literal sits in the source.
TOKEN = ".".join(["M" + "x" * 23, "GabcdE", "y" * 27])
KEY = "sk-test-abcdefghijklmnopqrstuvwxyz"


def test_known_secret_values_are_redacted_everywhere_in_a_line() -> None:
    out = io.StringIO()
    setup_logging(secrets=["hunter2-secret"], stream=out)
    logging.getLogger("any.library").warning("password is %s", "hunter2-secret")
    assert "hunter2-secret" not in out.getvalue()
    assert REDACTED in out.getvalue()


def test_token_and_key_shapes_are_redacted_even_when_not_configured() -> None:
    out = io.StringIO()
    setup_logging(stream=out)
    logging.getLogger("disnake.http").error("auth %s and %s", TOKEN, KEY)
    assert TOKEN not in out.getvalue() and KEY not in out.getvalue()


def test_exceptions_are_redacted_too() -> None:
    out = io.StringIO()
    setup_logging(secrets=[KEY], stream=out)
    try:
        raise RuntimeError(f"upstream said: bad key {KEY}")
    except RuntimeError:
        logging.getLogger("x").exception("call failed")
    assert KEY not in out.getvalue()
    assert "RuntimeError" in out.getvalue()


def test_json_format_is_one_object_per_line_with_fields() -> None:
    out = io.StringIO()
    setup_logging(fmt="json", stream=out)
    logging.getLogger("personae.reply").info("replied", extra={"fields": {"persona": "ada"}})
    entry = json.loads(out.getvalue().strip())
    assert entry["message"] == "replied"
    assert entry["persona"] == "ada"
    assert entry["level"] == "info"


def test_webhook_and_interaction_tokens_in_urls_are_redacted() -> None:
    out = io.StringIO()
    setup_logging(stream=out)
    webhook_token = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdefghijklmnopqrstu"
    logging.getLogger("disnake.webhook.async_").warning(
        "POST http://127.0.0.1:1/api/v10/webhooks/123456789012345678/%s?wait=1", webhook_token
    )
    logging.getLogger("personae.adapter").warning(
        "POST /interactions/99887766554433/%s/callback", "aW50ZXJhY3Rpb246OTk4ODc3NjY1NTQ0MzM6dG9rZW4"
    )
    text = out.getvalue()
    assert webhook_token not in text
    assert "aW50ZXJhY3Rpb246OTk4ODc3NjY1NTQ0MzM6dG9rZW4" not in text
    assert text.count(REDACTED) == 2


def test_secrets_named_later_by_persona_tools_are_redacted_too() -> None:
    stream = io.StringIO()
    redactor = setup_logging(secrets=["known-secret-1"], stream=stream)
    logging.getLogger("core.tools.http").warning("echoed wx-token-77 and known-secret-1")
    redactor.add(["wx-token-77"])
    logging.getLogger("core.tools.http").warning("echoed wx-token-77 again")
    first, second = stream.getvalue().splitlines()
    assert "wx-token-77" in first and "known-secret-1" not in first
    assert "wx-token-77" not in second and REDACTED in second
