"""The ``moderation`` section of config.yaml, a persona's ``nsfw`` and ``moderation``
fields, and the policy between them: what is read, what is refused (with file, line and
a sentence), and what a persona changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import ModerationSettings, Thresholds, load_config
from core.credentials import Secrets
from core.events import ModerationDirection
from core.moderation.policy import judge, policy_for
from core.moderation.wordlist import WORDS_PER_PATTERN, LocalList
from core.personas.loader import load_persona_text
from core.personas.warnings import persona_warnings
from core.problems import ProblemsError

PROVIDERS = "providers:\n  fake: {base_url: 'http://127.0.0.1:9/v1'}\n  stub: {kind: offline}\n"


def config_with(tmp_path: Path, text: str):
    (tmp_path / "config.yaml").write_text(PROVIDERS + text)
    return load_config(tmp_path / "config.yaml")


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ProblemsError) as caught:
        config_with(tmp_path, text)
    return [str(p) for p in caught.value.problems]


def persona(extra: str = "", **kw):
    text = ("id: lil\nname: Lil\nmodel: {provider: offline, name: x}\nprompt: {system: hi}\n"
            + extra)
    return load_persona_text(text, file="lil.yaml", defaults={}, known_providers=("offline",))


def test_the_section_is_read_with_its_defaults(tmp_path: Path) -> None:
    config = config_with(tmp_path, """
moderation:
  provider: fake
  timeout: 2s
  fail: closed
  thresholds: {sexual/minors: {flag: 0.01, block: 0.1}}
  words: {harassment: [dimwit]}
  actions: {flag: warn, block: [refuse, alert]}
  alert_channel: 123
  bypass_roles: [456]
  notices: {inbound: No.}
""")
    m = config.moderation
    assert m.enabled and m.inbound and m.outbound
    assert (m.provider, m.timeout_s, m.fail) == ("fake", 2.0, "closed")
    assert m.thresholds["default"] == Thresholds(flag=0.5, block=0.8)
    assert m.thresholds["sexual/minors"] == Thresholds(flag=0.01, block=0.1)
    assert m.actions == {"flag": ("warn",), "block": ("refuse", "alert")}
    assert (m.alert_channel, m.bypass_roles) == ("123", frozenset({"456"}))
    assert m.inbound_notice == "No." and m.words == {"harassment": ("dimwit",)}
    assert not config_with(tmp_path, "").moderation.enabled  # no section: off
    assert not config_with(tmp_path, "moderation: {enabled: false, provider: fake}\n") \
        .moderation.enabled


def test_mistakes_in_the_section_are_located_and_explained(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "moderation: {provider: nope}\n") == [
        f"{tmp_path / 'config.yaml'}:4:24: moderation.provider: no provider 'nope' under "
        "providers: (known: fake, stub)"]
    assert "the offline provider has no moderation endpoint" in problems_of(
        tmp_path, "moderation: {provider: stub}\n")[0]
    assert "flag (0.9) is over block (0.5)" in problems_of(
        tmp_path, "moderation: {thresholds: {hate: {flag: 0.9, block: 0.5}}}\n")[0]
    assert "an alert action needs moderation.alert_channel" in problems_of(
        tmp_path, "moderation: {actions: {flag: [alert]}}\n")[0]
    lookahead = problems_of(tmp_path, "moderation: {patterns: {spam: ['a(?=b)']}}\n")[0]
    assert "moderation.patterns.spam[0]" in lookahead and "lookahead" in lookahead
    assert "'5m' is too long (at most 1m)" in problems_of(tmp_path,
                                                          "moderation: {timeout: 5m}\n")[0]
    assert "is not an action" in problems_of(
        tmp_path, "moderation: {actions: {block: [delete]}}\n")[0]
    assert "must be longer than 0s" in problems_of(tmp_path, "moderation: {timeout: 0s}\n")[0]


def test_a_persona_may_change_thresholds_actions_and_directions(tmp_path: Path) -> None:
    settings = config_with(tmp_path, "moderation: {actions: {flag: [warn]}}\n").moderation
    plain = persona()
    adult = persona("nsfw: true\nmoderation:\n  outbound: false\n"
                    "  thresholds: {sexual: {flag: 0.95, block: 0.99}}\n"
                    "  actions: {flag: log}\n")
    assert adult.nsfw and not plain.nsfw
    inbound = policy_for(settings, adult, ModerationDirection.IN)
    assert inbound is not None and policy_for(settings, adult, ModerationDirection.OUT) is None
    default = policy_for(settings, plain, ModerationDirection.IN)
    assert default is not None
    scores = {"sexual": 0.9, "sexual/minors": 0.85, "harassment": 0.1}
    for_adult, for_plain = judge(inbound, scores, failed=False), judge(default, scores,
                                                                      failed=False)
    # sexual/minors falls back to the family "sexual" of the persona, not to default
    assert for_adult.verdict == "pass" and for_adult.matched == ()
    assert for_plain.verdict == "block" and for_plain.matched == ("sexual", "sexual/minors")
    assert judge(inbound, {"sexual": 0.96}, failed=False).actions == ("log",)
    assert judge(default, {"hate": 0.6}, failed=False).actions == ("warn",)
    with pytest.raises(ProblemsError, match=r"flag \(0.9\) is over block \(0.1\)"):
        persona("moderation: {thresholds: {hate: {flag: 0.9, block: 0.1}}}\n")


def test_fail_closed_refuses_whatever_the_lists_say_and_fail_open_keeps_their_verdict(
        tmp_path: Path) -> None:
    closed = config_with(tmp_path, "moderation: {fail: closed}\n").moderation
    opened = config_with(tmp_path, "moderation: {fail: open}\n").moderation
    for settings, verdict in ((closed, "block"), (opened, "pass")):
        policy = policy_for(settings, persona(), ModerationDirection.OUT)
        assert policy is not None
        judged = judge(policy, {}, failed=True)
        assert judged.verdict == verdict and judged.failed_closed == (verdict == "block")
    policy = policy_for(opened, persona(), ModerationDirection.IN)
    assert policy is not None
    assert judge(policy, {"harassment": 1.0}, failed=True).verdict == "block"  # the local list


def test_a_long_word_list_is_split_and_matched_in_linear_time() -> None:
    words = [f"word{i}" for i in range(WORDS_PER_PATTERN * 5 + 7)]
    local = LocalList.compile({"spam": words}, {"hate": [r"(a+)+$"]})
    assert len(local.categories["spam"]) == 6
    assert local.scores(f"this has {words[-1]} in it") == {"spam": 1.0}
    assert local.scores("no " + words[0] + "x") == {}
    assert local.scores("a" * 50_000 + "!") == {}  # no backtracking: instant
    assert local.scores("aaa") == {"hate": 1.0}


def test_nsfw_personas_asking_for_dms_and_unused_overrides_are_warned_about(
        tmp_path: Path) -> None:
    asks = persona("nsfw: true\ntriggers: {dm: true}\nmoderation: {inbound: false}\n")
    quiet = persona("nsfw: true\n")
    warned = [str(w) for w in persona_warnings(asks, {}, Secrets({}))]
    assert any("lil.yaml:6:" in w and "dms.allow_nsfw" in w for w in warned)
    assert any("moderation is not enabled" in w for w in warned)
    on = ModerationSettings(enabled=True)
    assert persona_warnings(asks, {}, Secrets({}), allow_nsfw_dms=True, moderation=on) == []
    alerting = persona("moderation: {actions: {block: [refuse, alert]}}\n")
    assert [w.message for w in persona_warnings(alerting, {}, Secrets({}), moderation=on)] == [
        "an alert action needs moderation.alert_channel in config.yaml: no alert will be posted"]
    assert persona_warnings(alerting, {}, Secrets({}), moderation=ModerationSettings(
        enabled=True, alert_channel="1")) == []
    assert persona_warnings(quiet, {}, Secrets({})) == []  # the default dm: true says nothing


def test_a_level_left_out_is_inherited_and_never_is_never_reached(tmp_path: Path) -> None:
    settings = config_with(tmp_path, """
moderation:
  thresholds:
    default: {block: 0.9}
    harassment: {flag: 0.3}
    spam: {block: never}
""").moderation
    assert settings.thresholds["default"] == Thresholds(flag=0.5, block=0.9)
    assert settings.thresholds["harassment"] == Thresholds(flag=0.3, block=0.9)
    assert settings.thresholds["spam"] == Thresholds(flag=0.5, block=None)
    plain = policy_for(settings, persona(), ModerationDirection.IN)
    assert plain is not None
    assert judge(plain, {"spam": 1.0}, failed=False).verdict == "flag"  # a list that only flags
    assert judge(plain, {"harassment/threatening": 0.35}, failed=False).verdict == "flag"
    relaxed = persona("moderation: {thresholds: {harassment: {flag: never}, spam: {block: 0.99}}}\n")
    assert relaxed.moderation.thresholds == {"harassment": {"flag": None},
                                             "spam": {"block": 0.99}}
    policy = policy_for(settings, relaxed, ModerationDirection.IN)
    assert policy is not None
    assert policy.thresholds_for("harassment") == (None, 0.9)  # block still config's
    assert policy.thresholds_for("spam") == (0.5, 0.99)
    judged = judge(policy, {"harassment": 0.5, "spam": 1.0}, failed=False)
    assert judged.verdict == "block" and judged.matched == ("spam",)
    assert judged.thresholds["harassment"] == {"flag": None, "block": 0.9}
    assert "is not a score from 0 to 1, or never" in problems_of(
        tmp_path, "moderation: {thresholds: {hate: {flag: sometimes}}}\n")[0]
