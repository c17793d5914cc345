"""Loading valid personas: defaults, the built values, versions and the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_config
from core.personas.defaults import defaults_from_config, known_providers_from_config
from core.personas.loader import (
    LoadCache,
    _load_located,
    load_persona_file,
    load_persona_text,
    load_personas,
    persona_schema_text,
)
from core.problems import ProblemsError

from .conftest import MINIMAL, PROVIDERS, dedent

REPO = Path(__file__).resolve().parents[2]


def load(text: str, defaults: dict | None = None):
    return load_persona_text(text, file="p.yaml", defaults=defaults or {},
                             known_providers=PROVIDERS)


def test_defaults_fill_only_what_the_persona_leaves_out(defaults) -> None:
    persona = load(MINIMAL + "model: {temperature: 0.3}\n", defaults)
    assert (persona.model.provider, persona.model.name) == ("openai", "gpt-4o-mini")
    assert persona.model.temperature == 0.3
    assert persona.limits.reply_deadline_s == 30.0
    own = load(MINIMAL + "model: {provider: local, name: llama3}\nlimits: {reply_deadline: 5s}\n",
               defaults)
    assert (own.model.provider, own.model.name) == ("local", "llama3")
    assert own.limits.reply_deadline_s == 5.0


def test_null_switches_off_a_default_section() -> None:
    defaults = {"model": {"provider": "openai", "name": "m"},
                "limits": {"rate": {"capacity": 3, "per": "1m"}}}
    assert load(MINIMAL, defaults).limits.rate is not None
    assert load(MINIMAL + "limits: {rate: null}\n", defaults).limits.rate is None


def test_all_fields_are_built() -> None:
    text = dedent("""
        id: full
        name: Full
        avatar_url: https://example.org/a.png
        description: everything
        notes: for authors
        tags: [a, b]
        extensions: {tool: {x: 1}}
        model:
          provider: openai
          name: m
          temperature: 0.5
          max_tokens: 100
          top_p: 0.9
          stop: "END"
          seed: 7
          extra: {logit_bias: {}}
          fallback: {provider: local, name: small}
        prompt:
          system: "{persona}"
          examples: [{user: hi, assistant: hello}]
          post_history: short
          greeting: hey
          alternate_greetings: [yo]
        context: {scope: thread, max_messages: 5, max_tokens: 100, include_other_personas: false}
        triggers:
          mention: false
          keywords: [hey]
          patterns: ['^!full']
          case_sensitive: true
          channels: [123456789012345678]
          thread: {after_turns: 3}
          from_personas: [ada]
          max_hops: 1
        limits:
          rate: {messages: 4, per: 2m, scope: channel}
          quota: {tokens: 1000, scope: guild, reset: "0 9 * * mon", timezone: Europe/Paris}
          max_concurrent: 2
          reply_deadline: 1.5s
        permissions: {allow_users: [42], deny_roles: ["7"], dms: false}
        delivery: {webhook: false, allowed_mentions: {users: true}, busy_notice: wait}
        lorebook:
          scan_depth: 2
          token_budget: 50
          entries:
            - {keys: [k], content: c, secondary_keys: [s], selective_logic: not_all, order: 3}
    """)
    p = load(text)
    assert p.model.stop == ("END",) and p.model.fallback.name == "small"
    assert p.model.extra == {"logit_bias": {}}
    assert p.prompt.examples[0].assistant == "hello"
    assert p.prompt.alternate_greetings == ("yo",)
    assert p.context.scope == "thread"
    assert p.triggers.patterns[0].pattern == "^!full" and p.triggers.patterns[0].flags & 2 == 0
    assert p.triggers.channels == frozenset({"123456789012345678"})
    assert p.triggers.thread.after_turns == 3
    assert p.limits.rate.capacity == 4 and p.limits.rate.per_s == 120.0
    assert p.limits.quota.timezone == "Europe/Paris"
    assert p.limits.reply_deadline_s == 1.5
    assert p.permissions.allow_users == frozenset({"42"}) and not p.permissions.dms
    assert p.delivery.allowed_mentions.users and not p.delivery.allowed_mentions.everyone
    assert p.delivery.busy_notice == "wait"
    assert p.lorebook.token_budget == 50
    assert p.lorebook.entries[0].selective_logic == "not_all"
    assert p.notes == "for authors" and p.extensions == {"tool": {"x": 1}}


def test_patterns_ignore_case_unless_told() -> None:
    text = MINIMAL + "model: {provider: openai, name: m}\ntriggers: {patterns: ['^hey']}\n"
    assert load(text).triggers.patterns[0].match("HEY you")


def test_version_is_a_content_hash_of_text_and_defaults() -> None:
    defaults = {"model": {"provider": "openai", "name": "m"}}
    same = load(MINIMAL, defaults), load(MINIMAL, dict(defaults))
    assert same[0].version == same[1].version and len(same[0].version) == 16
    assert load(MINIMAL + "description: x\n", defaults).version != same[0].version
    other_defaults = {"model": {"provider": "openai", "name": "other"}}
    assert load(MINIMAL, other_defaults).version != same[0].version
    assert same[0].applied_defaults == defaults and same[0].source_text == MINIMAL


def test_directory_loading_keeps_good_files_and_reports_bad_ones(tmp_path: Path) -> None:
    (tmp_path / "ada.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "broken.yml").write_text("id: [\n", encoding="utf-8")
    (tmp_path / ".ada.yaml.swp.yaml").write_text("junk", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    loaded = load_personas(tmp_path, defaults={"model": {"provider": "openai", "name": "m"}},
                           known_providers=PROVIDERS)
    assert list(loaded.personas) == ["ada"]
    assert [p.file for p in loaded.problems] == [str(tmp_path / "broken.yml")]
    assert loaded.failed_files == {(tmp_path / "broken.yml").resolve()}


def test_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    loaded = load_personas(tmp_path / "nope", defaults={}, known_providers=PROVIDERS)
    assert not loaded.personas
    assert "no such directory" in loaded.problems[0].message


def test_missing_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ProblemsError, match="no such file"):
        load_persona_file(tmp_path / "gone.yaml", defaults={}, known_providers=PROVIDERS)


def test_shipped_personas_are_valid_with_the_shipped_config() -> None:
    config = load_config(REPO / "config.yaml")
    loaded = load_personas(REPO / "personas", defaults=defaults_from_config(config),
                           known_providers=known_providers_from_config(config))
    assert loaded.problems == ()
    assert set(loaded.personas) == {"ada", "narrator", "terse"}
    assert loaded.personas["narrator"].lorebook.entries
    assert loaded.personas["terse"].limits.quota.messages == 30
    for path in (REPO / "personas").glob("*.yaml"):
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        assert first_line == "# yaml-language-server: $schema=./persona.schema.json"


def test_editor_schema_is_the_loader_schema() -> None:
    assert (REPO / "personas" / "persona.schema.json").read_text(encoding="utf-8") == \
        persona_schema_text()


def test_offline_provider_is_always_known(project: Path) -> None:
    config = load_config(project / "config.yaml")
    assert "offline" in known_providers_from_config(config)
    text = MINIMAL + "model: {provider: offline, name: echo}\n"
    persona = load_persona_text(text, file="p.yaml", defaults={},
                                known_providers=known_providers_from_config(config))
    assert persona.model.provider == "offline"


def test_load_cache_reparses_only_changed_files(tmp_path: Path) -> None:
    defaults = {"model": {"provider": "openai", "name": "m"}}
    (tmp_path / "ada.yaml").write_text(MINIMAL, encoding="utf-8")
    (tmp_path / "bob.yaml").write_text(MINIMAL.replace("id: ada", "id: bob"), encoding="utf-8")
    cache = LoadCache()
    first = load_personas(tmp_path, defaults=defaults, known_providers=PROVIDERS, cache=cache)
    (tmp_path / "bob.yaml").write_text(MINIMAL.replace("id: ada", "id: bob") + "tags: [x]\n",
                                       encoding="utf-8")
    second = load_personas(tmp_path, defaults=defaults, known_providers=PROVIDERS, cache=cache)
    assert second.personas["ada"] is first.personas["ada"]
    assert second.personas["bob"].tags == ("x",)
    (tmp_path / "bob.yaml").write_text("id: [", encoding="utf-8")
    third = load_personas(tmp_path, defaults=defaults, known_providers=PROVIDERS, cache=cache)
    assert "bob" not in third.personas and third.problems


@pytest.mark.parametrize("name", ["ada", "narrator", "terse"])
def test_quick_and_located_loading_build_the_same_persona(name: str) -> None:
    text = (REPO / "personas" / f"{name}.yaml").read_text(encoding="utf-8")
    defaults = {"model": {"provider": "openai", "name": "m"}, "limits": {"reply_deadline": "9s"}}
    quick = load_persona_text(text, file="p.yaml", defaults=defaults, known_providers=PROVIDERS)
    located = _load_located(text, "p.yaml", None, defaults, PROVIDERS)
    assert quick == located


def test_integer_keys_and_duplicates_take_the_located_way() -> None:
    text = MINIMAL + "model: {provider: openai, name: m, extra: {logit_bias: {50256: -100}}}\n"
    assert load(text).model.extra == {"logit_bias": {50256: -100}}
    with pytest.raises(ProblemsError, match="appears twice"):
        load(MINIMAL + "model: {provider: openai, name: m}\nname: Again\n")


def test_compiling_a_fast_validator_leaves_the_shared_schema_as_it_was() -> None:
    # fastjsonschema rewrites the $refs it walks; the persona schema is shared (cached)
    # by every validator, the lorebook files' among them
    import copy

    from core.personas.loader import persona_schema
    from core.schemacheck import fast_validator_for

    before = copy.deepcopy(dict(persona_schema()))
    fast_validator_for(persona_schema())
    assert dict(persona_schema()) == before
