"""Worst-case cost of one diagnosis on hostile input, per kind of input, at Telegram's 4,096 characters and at 64 KB.

Run: .venv/bin/python benchmarks/bench_adversarial.py   (single process, one core)

Targets (issue 10): any input up to 4,096 characters in <= 5 ms at p99, a 64 KB input in <= 200 ms and <= 100 MB.
Each kind is generated afresh for every sample (seeded, so runs repeat), and a normal message's time is measured in
the same run for scale.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bot.core.matcher import get_matcher

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus" / "tune.jsonl"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
CUES = "API Error: 529 overloaded rate limit timed out 服务器繁忙 usage limit reached proxy ECONNRESET 额度用完 "


def one_long_word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(n))


def one_letter_repeated(rng: random.Random, n: int) -> str:
    return rng.choice(LETTERS) * n


def repeated_cues(rng: random.Random, n: int) -> str:
    start = rng.randrange(len(CUES))
    return ((CUES * (n // len(CUES) + 2))[start:])[:n]


def ideograph_run(rng: random.Random, n: int) -> str:
    return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(n))


def random_unicode(rng: random.Random, n: int) -> str:
    return "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(n))


def underscored_tokens(rng: random.Random, n: int) -> str:
    # Error-type-like tokens ("xqz_error"), each a near miss that the fuzzy token search must look at.
    words = ("_".join(one_long_word(rng, rng.randint(4, 9)) for _ in range(2)) for _ in range(n))
    return " ".join(words)[:n]


def log_with_error_at_end(rng: random.Random, n: int) -> str:
    lines, size = [], 0
    while size < n - 200:
        line = f"2026-12-03T10:{rng.randint(0, 59):02d}:00Z INFO step {rng.randint(1, 9999)} ok"
        lines.append(line)
        size += len(line) + 1
    lines.append('API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    return "\n".join(lines)[-n:]


KINDS: dict[str, Callable[[random.Random, int], str]] = {
    "one long word": one_long_word,
    "one letter repeated": one_letter_repeated,
    "repeated cues": repeated_cues,
    "ideograph run": ideograph_run,
    "random Unicode": random_unicode,
    "underscored tokens": underscored_tokens,
    "log, error at the end": log_with_error_at_end,
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=200, help="samples of each kind at 4,096 characters")
    parser.add_argument("--large", type=int, default=10, help="samples of each kind at 64 KB")
    args = parser.parse_args()
    matcher = get_matcher()
    # As the bot does after loading (bot/telegram/app.py): the knowledge base is kept out of the collector's walks.
    gc.collect()
    gc.freeze()
    normal = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    for text in normal[:50]:
        matcher.diagnose(text)
    times = []
    for text in normal:
        start = time.perf_counter()
        matcher.diagnose(text)
        times.append(time.perf_counter() - start)
    print(
        f"normal message ({len(normal)} corpus texts): p50 {statistics.median(times) * 1e3:.3f} ms, "
        f"p99 {percentile(times, 0.99) * 1e3:.3f} ms"
    )
    print(f"{'kind':<24} {'4,096 chars p50/p99/max (ms)':>30} {'64 KB max (ms)':>15} {'64 KB peak (MB)':>16}")
    worst_small = worst_large = worst_memory = 0.0
    for name, make in KINDS.items():
        rng = random.Random(name)
        small = []
        for _ in range(args.small):
            text = make(rng, 4096)
            start = time.perf_counter()
            matcher.diagnose(text)
            small.append(time.perf_counter() - start)
        large, peaks = [], []
        for _ in range(args.large):
            text = make(rng, 65536)
            start = time.perf_counter()
            matcher.diagnose(text)
            large.append(time.perf_counter() - start)
            # Memory in a second pass: tracemalloc slows Python down several times.
            tracemalloc.start()
            matcher.diagnose(text)
            peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        p99 = percentile(small, 0.99)
        worst_small, worst_large = max(worst_small, p99), max(worst_large, max(large))
        worst_memory = max(worst_memory, max(peaks))
        print(
            f"{name:<24} {statistics.median(small) * 1e3:>12.2f} / {p99 * 1e3:6.2f} / {max(small) * 1e3:6.2f}"
            f" {max(large) * 1e3:>15.1f} {max(peaks):>16.1f}"
        )
    print(
        f"worst: 4,096 chars p99 {worst_small * 1e3:.2f} ms (target <= 5); 64 KB {worst_large * 1e3:.1f} ms "
        f"(target <= 200), peak {worst_memory:.1f} MB allocated (target <= 100)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
