"""SillyTavern's world-info semantics, as cards rely on them: the budget as a share of
the context, whole words off for scripts without spaces, probability drawn from the
recorded seed, bounded recursion, sticky and cooldown, and an outcome (with its reason)
for every entry that activated."""

from __future__ import annotations

from core.personas.lorebook import MAX_RECURSION_STEPS, entry_digest, scan_lorebook
from core.personas.model import Lorebook, LoreEntry


def words(text: str) -> int:
    return len(text.split())


def scan(entries: list[LoreEntry], texts: list[str], **options):
    book = options.pop("book", {})
    return scan_lorebook(Lorebook(entries=tuple(entries), **book), texts, words, **options)


def inserted(result) -> list[str]:
    return [o.entry.content for o in result.inserted]


def test_the_default_budget_is_a_quarter_of_the_context() -> None:
    big = LoreEntry(" ".join(["w"] * 600), keys=("k",))
    assert inserted(scan([big], ["k"], context_tokens=2000)) == []  # 600 > 500
    assert inserted(scan([big], ["k"], context_tokens=2400)) == [big.content]
    cut = scan([big], ["k"], context_tokens=2000).outcomes[0]
    assert cut.status == "cut"
    assert cut.reason == ("key 'k' in the message answered; cut by the budget: needs 600 "
                          "tokens, 500 of 500 left")
    assert Lorebook(token_budget=50).budget(10_000) == 50
    assert Lorebook(context_share=0.5).budget(3000) == 1500


def test_keys_in_scripts_without_spaces_match_inside_a_sentence() -> None:
    entries = [LoreEntry("village", keys=("村庄",)), LoreEntry("thai", keys=("หมู่บ้าน",)),
               LoreEntry("tokyo", keys=("東京",)), LoreEntry("cat", keys=("cat",))]
    assert inserted(scan(entries, ["我走进村庄看看教堂"])) == ["village"]
    assert inserted(scan(entries, ["ฉันไปหมู่บ้านเมื่อวาน"])) == ["thai"]
    assert inserted(scan(entries, ["東京に行きました"])) == ["tokyo"]
    assert inserted(scan(entries, ["concatenate"])) == []  # whole words still hold for Latin
    assert inserted(scan(entries, ["我的cat很可爱"])) == ["cat"]  # CJK around it is a boundary


def test_probability_is_drawn_from_the_seed_and_recorded_in_the_outcome() -> None:
    entry = LoreEntry("maybe", keys=("k",), probability=50)
    results = {seed: inserted(scan([entry], ["k"], seed=seed)) for seed in map(str, range(40))}
    assert {len(v) for v in results.values()} == {0, 1}  # sometimes in, sometimes not
    for seed, found in results.items():
        assert inserted(scan([entry], ["k"], seed=seed)) == found  # the same seed, the same draw
    missed = next(seed for seed, found in results.items() if not found)
    (outcome,) = scan([entry], ["k"], seed=missed).outcomes
    assert outcome.status == "blocked" and "the 50% chance missed (rolled" in outcome.reason
    assert inserted(scan([LoreEntry("never", keys=("k",), probability=0)], ["k"])) == []


def test_recursion_activates_entries_named_in_inserted_content_within_bounds() -> None:
    chain = [LoreEntry(f"step{i} mentions step{i + 1}", keys=(f"step{i}",)) for i in range(10)]
    flat = scan(chain, ["step0"])
    assert inserted(flat) == [chain[0].content]  # recursion is off unless asked for
    deep = scan(chain, ["step0"], book={"recursive": True})
    assert inserted(deep) == [e.content for e in chain[:MAX_RECURSION_STEPS + 1]]
    assert [o.step for o in deep.inserted] == list(range(MAX_RECURSION_STEPS + 1))
    assert deep.inserted[1].reason == "recursion: key 'step1' in the entry 'step0'"


def test_recursion_flags_exclude_prevent_and_delay() -> None:
    source = LoreEntry("the dragon and the king", keys=("start",))
    excluded = LoreEntry("dragon lore", keys=("dragon",), exclude_recursion=True)
    delayed = LoreEntry("king lore", keys=("king",), delay_until_recursion=True)
    book = {"recursive": True}
    assert inserted(scan([source, excluded, delayed], ["start"], book=book)) == [
        source.content, delayed.content]
    # delayed entries never activate straight from the conversation
    assert inserted(scan([delayed], ["the king"], book=book)) == []
    quiet = LoreEntry("the dragon and the king", keys=("start",), prevent_recursion=True)
    assert inserted(scan([quiet, delayed], ["start"], book=book)) == [quiet.content]


def test_sticky_entries_stay_and_cooling_entries_wait() -> None:
    sticky = LoreEntry("storm", keys=("storm",), sticky=3)
    cooling = LoreEntry("bell", keys=("bell",), cooldown=2)
    digest = {e.content: entry_digest(e) for e in (sticky, cooling)}
    # inserted one message ago: the storm stays without its key, the bell waits
    result = scan([sticky, cooling], ["the bell rings"],
                  since={digest["storm"]: 1, digest["bell"]: 1})
    assert inserted(result) == ["storm"]
    bell = next(o for o in result.outcomes if o.entry is cooling)
    assert bell.status == "blocked" and "cooling down" in bell.reason
    later = scan([sticky, cooling], ["the bell rings"],
                 since={digest["storm"]: 3, digest["bell"]: 2})
    assert inserted(later) == ["bell"]


def test_every_activated_entry_has_an_outcome_and_a_reason() -> None:
    entries = [
        LoreEntry("always", constant=True),
        LoreEntry("tower", keys=("tower",), secondary_keys=("ruin",)),
        LoreEntry("quiet", keys=("nothing here",)),
    ]
    result = scan(entries, ["the tower stands", "and more"])
    reasons = {o.entry.content: (o.status, o.reason) for o in result.outcomes}
    assert reasons == {
        "always": ("inserted", "constant"),
        "tower": ("blocked", "key 'tower' matched, but and any of 'ruin' did not hold"),
    }
    located = scan([LoreEntry("x", keys=("tower",))], ["the tower", "then", "now"])
    assert located.outcomes[0].reason == "key 'tower' 2 messages before the message answered"
