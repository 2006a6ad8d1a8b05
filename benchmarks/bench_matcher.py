"""Benchmark of the diagnosis engine: throughput, latency on long messages, load time, memory, and the rapidfuzz floor.

Run: .venv/bin/python benchmarks/bench_matcher.py   (single process, so one core)
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import random
import resource
import statistics
import time
from pathlib import Path

from rapidfuzz import process

from bot.core.knowledge import load_knowledge
from bot.core.matcher import Matcher
from bot.core.normalize import clean, compact

ROOT = Path(__file__).resolve().parent.parent
RESEARCH = ROOT.parent / "shared" / "research" / "claude-error-messages.tsv"
CORPUS = ROOT / "tests" / "data" / "corpus" / "tune.jsonl"
FILLER = [
    "Running tests for module {n}... ok",
    "npm WARN deprecated package-{n}@1.0.{n}: use something else",
    "2026-11-25T10:{m:02d}:00Z INFO worker {n} finished step in {n}ms",
    "我刚才让 Claude 帮我改了第 {n} 段代码，然后继续看日志",
    "> user: can you refactor function_{n} to be async?",
]


def short_messages() -> list[str]:
    texts: list[str] = []
    if CORPUS.exists():
        texts += [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    if RESEARCH.exists():
        with RESEARCH.open(encoding="utf-8", newline="") as fh:
            texts += [row["message"] for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return [t for t in texts if len(t) <= 400] or [
        "Due to unexpected capacity constraints, Claude is unable to respond"
    ]


def long_messages(errors: list[str], count: int, size: int = 4000, seed: int = 7) -> list[str]:
    """Logs of `size` characters with one error (or none, a third of the time) somewhere inside."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        lines: list[str] = []
        while sum(len(line) + 1 for line in lines) < size:
            lines.append(rng.choice(FILLER).format(n=rng.randrange(1000), m=rng.randrange(60)))
        if i % 3:
            lines.insert(rng.randrange(len(lines)), rng.choice(errors))
        out.append("\n".join(lines)[:size])
    return out


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to run the throughput loop")
    parser.add_argument("--long", type=int, default=2000, help="how many 4,000-character messages to time")
    args = parser.parse_args()

    t0 = time.perf_counter()
    kb = load_knowledge()
    t1 = time.perf_counter()
    matcher = Matcher(kb)
    t2 = time.perf_counter()
    matcher.diagnose("warm up 中文 繁體")  # first CJK text loads OpenCC's dictionary
    t3 = time.perf_counter()
    gc.collect()
    gc.freeze()  # as run_bot does once everything is loaded

    shorts = short_messages()
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for text in shorts:
            matcher.diagnose(text)
        count += len(shorts)
    elapsed = time.perf_counter() - start
    per_second = count / elapsed

    sig_texts = matcher.signature_texts
    floor_count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for text in shorts:
            process.extractOne(text, sig_texts)
        floor_count += len(shorts)
    floor_per_second = floor_count / (time.perf_counter() - start)

    errors = [t for t in shorts if matcher.diagnose(t).cause is not None]
    longs = long_messages(errors, args.long)
    latencies = []
    for text in longs:
        s = time.perf_counter()
        matcher.diagnose(text)
        latencies.append((time.perf_counter() - s) * 1000)
    floor_lat = []
    for text in longs[:500]:
        s = time.perf_counter()
        process.extractOne(compact(clean(text)), sig_texts)
        floor_lat.append((time.perf_counter() - s) * 1000)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"knowledge base load:        {(t1 - t0) * 1000:.1f} ms (+ {(t2 - t1) * 1000:.1f} ms index build)")
    print(f"first Chinese text (OpenCC): {(t3 - t2) * 1000:.1f} ms")
    print(f"short messages:             {per_second:,.0f} diagnoses/s over {len(shorts)} texts")
    print(f"floor (extractOne, WRatio): {floor_per_second:,.0f} /s  -> ours takes {floor_per_second / per_second:.2f}x")
    print(
        f"4,000-char messages:        p50 {statistics.median(latencies):.3f} ms, "
        f"p99 {percentile(latencies, 0.99):.3f} ms"
        f", max {max(latencies):.3f} ms ({len(longs)} messages)"
    )
    print(
        f"floor on them:              p50 {statistics.median(floor_lat):.3f} ms, "
        f"p99 {percentile(floor_lat, 0.99):.3f} ms  -> ours takes "
        f"{statistics.median(latencies) / statistics.median(floor_lat):.2f}x at p50"
    )
    print(f"peak memory (max RSS):      {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
