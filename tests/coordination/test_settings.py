"""Shards in config.yaml (``discord.shards``, ``discord.shard_count``) and on the command
line (``personae run --shards --shard-count``): checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import cli
from core.config import load_config, parse_shards
from core.problems import ProblemsError

PG = "postgresql://postgres@127.0.0.1:5432/test?schema=x"


def write(tmp_path: Path, discord: str, url: str | None = None) -> Path:
    path = tmp_path / "config.yaml"
    database = f"database: {{url: '{url}'}}\n" if url else ""
    path.write_text(f"{database}discord: {{{discord}}}\n")
    return path


def problem(path: Path) -> str:
    with pytest.raises(ProblemsError) as caught:
        load_config(path)
    [found] = caught.value.problems
    return str(found)


def test_ranges_and_auto() -> None:
    assert parse_shards("0-3") == (0, 1, 2, 3)
    assert parse_shards("5,0-1, 3") == (0, 1, 3, 5)
    assert parse_shards("auto") == "auto"
    with pytest.raises(ValueError, match="runs backwards: write 1-3"):
        parse_shards("3-1")


def test_shards_on_postgresql_are_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "shards: '0-3', shard_count: 8", PG))
    assert config.discord.shards == (0, 1, 2, 3) and config.discord.shard_count == 8
    standby = load_config(write(tmp_path, "shards: auto, shard_count: 8", PG))
    assert standby.discord.shards == "auto"
    whole = load_config(write(tmp_path, "shards: '0-1', shard_count: 2"))  # SQLite: all
    assert whole.discord.shards == (0, 1)
    assert load_config(write(tmp_path, "token_env: T")).discord.shards is None


def test_part_of_the_shards_on_sqlite_is_refused_at_the_setting(tmp_path: Path) -> None:
    text = problem(write(tmp_path, "shards: '0-3', shard_count: 8"))
    assert ":1:" in text and "discord.shards" in text
    assert "running part of the shards needs the log on PostgreSQL" in text
    assert "a standby (auto) needs the log on PostgreSQL" in problem(
        write(tmp_path, "shards: auto, shard_count: 8"))


def test_shards_and_their_count_must_agree(tmp_path: Path) -> None:
    assert "shard 5 does not exist with shard_count 4 (shards are 0 to 3)" in problem(
        write(tmp_path, "shards: '5', shard_count: 4", PG))
    assert "shards needs shard_count" in problem(write(tmp_path, "shards: '0'", PG))
    assert "shard_count needs shards" in problem(write(tmp_path, "shard_count: 4", PG))
    assert "is not a shard list" in problem(write(tmp_path, "shards: 'a-b'", PG))


def test_run_checks_its_options_before_connecting(tmp_path: Path) -> None:
    config = write(tmp_path, "token_env: T")
    runner = CliRunner(env={"T": "x"})
    backwards = runner.invoke(cli, ["--config", str(config), "run", "--shards", "3-1",
                                    "--shard-count", "4"])
    sqlite = runner.invoke(cli, ["--config", str(config), "run", "--shards", "auto",
                                 "--shard-count", "4"])
    assert backwards.exit_code == 2 and "runs backwards" in backwards.stderr
    assert sqlite.exit_code == 2
    assert "a standby (auto) needs the log on PostgreSQL" in sqlite.stderr
    helped = runner.invoke(cli, ["run", "--help"])
    assert "--shards IDS" in helped.stdout and "--shard-count N" in helped.stdout
