"""config.yaml: validation with located errors, defaults, paths, secrets from the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.config import DEFAULT_DISCORD_API, load_config
from core.credentials import MissingSecret, Secrets
from core.problems import ProblemsError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def only_problem(path: Path) -> str:
    with pytest.raises(ProblemsError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 1, caught.value.problems
    return str(caught.value.problems[0])


def test_shipped_config_is_valid_and_resolves_paths_next_to_the_file() -> None:
    config = load_config(REPO / "config.yaml")
    assert config.database.path == REPO / "data" / "personae.db"
    assert config.personas_dir == REPO / "personas"
    assert config.providers["openai"].api_key_env == "OPENAI_API_KEY"
    assert config.discord.token_env == "DISCORD_TOKEN"


def test_empty_file_gets_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.database.path == tmp_path / "data" / "personae.db"
    assert config.database.synchronous == "full"
    assert config.discord.api_base_url == DEFAULT_DISCORD_API
    assert config.discord.catch_up_window_s == 600


def test_unknown_key_names_file_line_column_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  path: x.db\n  synchronus: full\n")
    assert only_problem(path) == (
        f"{path}:3:3: database.synchronus: unknown key 'synchronus' (did you mean 'synchronous'?)"
    )


def test_wrong_value_says_what_was_expected(tmp_path: Path) -> None:
    path = write(tmp_path, "discord:\n  catch_up_window: 10 minutes\n")
    assert only_problem(path) == (
        f'{path}:2:20: discord.catch_up_window: "10 minutes" is not a duration '
        "(use 30s, 5m, 1h or 1d)"
    )


def test_enum_value_suggests_the_close_one(tmp_path: Path) -> None:
    path = write(tmp_path, "logging:\n  format: jsno\n")
    assert "(did you mean 'json'?)" in only_problem(path)
    assert only_problem(path).startswith(f"{path}:2:11: logging.format:")


def test_a_secret_in_place_of_a_variable_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  openai:\n    api_key_env: sk-abc.def\n")
    message = only_problem(path)
    assert "providers.openai.api_key_env" in message
    assert "not an environment variable name" in message


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  pth: x\nlogging:\n  level: loud\n")
    with pytest.raises(ProblemsError) as caught:
        load_config(path)
    fields = [p.field for p in caught.value.problems]
    assert fields == ["database.pth", "logging.level"]


def test_yaml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  path: [unclosed\n")
    message = only_problem(path)
    # at the [ that is never closed, not where the file ran out
    assert message.startswith(f"{path}:2:9: YAML syntax error: this [ is never closed")


def test_duplicate_keys_are_errors_not_silently_last_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  path: a.db\n  path: b.db\n")
    assert only_problem(path) == f"{path}:3:3: database.path: this key appears twice in the same mapping"


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    assert "pass --config PATH or set PERSONAE_CONFIG" in only_problem(tmp_path / "nope.yaml")


def test_secrets_come_from_env_over_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DISCORD_TOKEN=from-file\nOPENAI_API_KEY=key-from-file\n")
    secrets = Secrets.load(env_file, environ={"DISCORD_TOKEN": "from-env"})
    assert secrets.get("DISCORD_TOKEN") == "from-env"
    assert secrets.get("OPENAI_API_KEY") == "key-from-file"
    with pytest.raises(MissingSecret, match="set the environment variable NOPE"):
        secrets.require("NOPE", "to talk to the model")


def test_cli_reports_a_config_error_in_one_line_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  pth: x\n")
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "--config", str(path), "db", "check"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}:2:3: database.pth: unknown key 'pth'" in result.stderr.replace("\n", "")


def test_config_comes_from_the_environment_variable_when_no_flag(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  path: env.db\n")
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "db", "init"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
        env={"PERSONAE_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").exists()


def test_the_context_cache_is_set_under_limits_and_reaches_the_dispatcher(tmp_path: Path) -> None:
    from core.dispatcher.dispatcher import DispatcherSettings

    default = load_config(write(tmp_path, ""))
    assert DispatcherSettings.from_config(default).history_cache_events == 50_000
    none = load_config(write(tmp_path, "limits: {context_cache: 0}\n"))
    assert DispatcherSettings.from_config(none).history_cache_events == 0
    assert "limits.context_cache" in only_problem(write(tmp_path, "limits: {context_cache: -1}\n"))
