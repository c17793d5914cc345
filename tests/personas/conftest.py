"""Shared helpers: a persona directory and a config.yaml in a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.config import load_config
from core.personas.defaults import LocatedDefaults, defaults_from_config

PROVIDERS = frozenset({"openai", "local", "offline"})

CONFIG = """\
database:
  path: data/personae.db
personas:
  dir: personas
providers:
  openai:
    api_key_env: OPENAI_API_KEY
  local:
    base_url: http://127.0.0.1:11434/v1
persona_defaults:
  model: {provider: openai, name: gpt-4o-mini}
  limits:
    reply_deadline: 30s
"""

MINIMAL = """\
id: ada
name: Ada
prompt:
  system: You are {persona}, talking with {user}.
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with config.yaml and an empty personas/ directory."""
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    (tmp_path / "personas").mkdir()
    return tmp_path


@pytest.fixture
def defaults(project: Path) -> LocatedDefaults:
    return defaults_from_config(load_config(project / "config.yaml"))
