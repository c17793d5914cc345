"""The local moderation lists: matching time per message, by list size and message size,
and a hostile message against a pattern that backtracks in Python's ``re``.

    python bench/moderation.py [--runs 7] [--json]

Words are made-up tokens (``w00000``..), compiled as config.yaml's ``moderation.words``
are (:class:`core.moderation.wordlist.LocalList`); messages are ordinary text that matches
nothing (the common case: every word of the list is tried). Each figure is the median of
the runs; the message sizes bracket a chat line (200 characters) and Discord's limit
(2,000) up to 20,000 (a long pasted text).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time

from core.moderation.wordlist import LocalList

WORD_COUNTS = (10, 200, 2_000, 20_000)
MESSAGE_CHARS = (200, 2_000, 20_000)


def _message(chars: int, rng: random.Random) -> str:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "and", "then",
             "says", "hello", "to", "everyone", "in", "chat", "today"]
    text: list[str] = []
    while sum(len(w) + 1 for w in text) < chars:
        text.append(rng.choice(words))
    return " ".join(text)[:chars]


def _median_us(local: LocalList, text: str, runs: int, repeat: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(repeat):
            local.scores(text)
        timings.append((time.perf_counter() - start) / repeat)
    return statistics.median(timings) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(17)
    results: dict[str, object] = {}
    for count in WORD_COUNTS:
        words = [f"w{i:05d}" for i in range(count)]
        start = time.perf_counter()
        local = LocalList.compile({"listed": words}, {})
        compile_ms = (time.perf_counter() - start) * 1000
        row = {"compile_ms": round(compile_ms, 2),
               "patterns": len(local.categories["listed"])}
        for chars in MESSAGE_CHARS:
            text = _message(chars, rng)
            assert local.scores(text) == {}
            row[f"{chars}_chars_us"] = round(_median_us(local, text, args.runs,
                                                        repeat=max(1, 2_000_000 // (chars * count))),
                                             1)
        assert local.scores(f"hello {words[-1]}!") == {"listed": 1.0}
        results[f"{count}_words"] = row
    # The classic catastrophic pattern: RE2 answers at once; Python's re is timed on a
    # much shorter text, since its time doubles with each character.
    hostile = LocalList.compile({}, {"spam": [r"(a+)+$"]})
    text = "a" * 2_000 + "!"
    results["hostile_re2_2000_chars_us"] = round(_median_us(hostile, text, args.runs, 100), 1)
    short = "a" * 24 + "!"
    start = time.perf_counter()
    re.search(r"(a+)+$", short)
    results["hostile_python_re_25_chars_ms"] = round((time.perf_counter() - start) * 1000, 1)
    if args.json:
        print(json.dumps(results))
        return
    print(f"{'words':>8} {'patterns':>8} {'compile ms':>10} "
          + " ".join(f"{c:>9,} ch" for c in MESSAGE_CHARS) + "   (µs per message)")
    for count in WORD_COUNTS:
        row = results[f"{count}_words"]
        assert isinstance(row, dict)
        print(f"{count:>8,} {row['patterns']:>8} {row['compile_ms']:>10} "
              + " ".join(f"{row[f'{c}_chars_us']:>12}" for c in MESSAGE_CHARS))
    print(f"'(a+)+$' on 2,000 a's and '!': RE2 {results['hostile_re2_2000_chars_us']} µs; "
          f"Python's re on 25 characters: {results['hostile_python_re_25_chars_ms']} ms")


if __name__ == "__main__":
    main()
