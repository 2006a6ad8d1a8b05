"""Merge harvested real-world rows into tests/data/real/ and split them by source, before any result is seen.

Usage: python scripts/split_real.py HARVEST.jsonl [...]
       python scripts/split_real.py --tune-only NAME.jsonl HARVEST.jsonl [...]

The second form writes a later harvest to tests/data/real/NAME.jsonl for tuning, keeping out every row whose source
is held out and every text the corpus already has, so the held-out set stays as it was split.

Each input row: {"source", "lang", "causes", "kind", "text"}. Rows are checked, e-mail addresses and keys masked,
exact duplicates (case and spacing folded) dropped. Whole sources (threads, pages) go to one side: all sources are
ordered by the SHA-256 of their URL and the first 36% go to heldout.jsonl, so the split depends on nothing but the
URLs (a thread two harvesters both visited still lands on one side).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "real"
HELD_SHARE = 0.36
LABELS = {"network", "service", "capacity", "context", "other", "none"}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_KEY = re.compile(r"\b(?:sk-ant-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9_-]{16,}|Bearer\s+[A-Za-z0-9._-]{16,})")


def _row(obj: dict, where: str) -> dict:
    missing = {"source", "lang", "causes", "kind", "text"} - obj.keys()
    if missing:
        raise ValueError(f"{where}: missing {sorted(missing)}")
    causes = obj["causes"]
    if not causes or any(c not in LABELS for c in causes) or ("none" in causes and len(causes) > 1):
        raise ValueError(f"{where}: bad causes {causes}")
    text = _KEY.sub("sk-***", _EMAIL.sub("<email>", obj["text"].strip()))
    source = obj["source"].split("#", 1)[0].strip()
    if not text or not source.startswith("http"):
        raise ValueError(f"{where}: empty text or a source that is not a URL")
    return {"source": source, "lang": obj["lang"], "causes": causes, "kind": obj["kind"], "text": text}


def _existing(rewritten: str) -> tuple[set[str], set[str]]:
    """The held-out sources, and the folded text of every row already in the corpus but the file being rewritten."""
    held, texts = set(), set()
    for path in sorted(p for p in OUT.glob("*.jsonl") if p.name != rewritten):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                texts.add(" ".join(row["text"].casefold().split()))
                if path.name == "heldout.jsonl":
                    held.add(row["source"])
    return held, texts


def _read(paths: list[str], seen: set[str], held: set[str]) -> tuple[list[dict], int]:
    """The checked rows of the harvest files, less those whose text is in `seen` (which grows) or whose source is in
    `held`; and how many were left out."""
    rows, dropped = [], 0
    for path in paths:
        for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            row = _row(json.loads(line), f"{path}:{n}")
            key = " ".join(row["text"].casefold().split())
            if key in seen or row["source"] in held:
                dropped += 1
                continue
            seen.add(key)
            rows.append(row)
    return rows, dropped


def tune_only(name: str, paths: list[str]) -> int:
    held, seen = _existing(name)
    kept, dropped = _read(paths, seen, held)
    with (OUT / name).open("w", encoding="utf-8") as fh:
        for r in kept:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{name}: {len(kept)} rows from {len({r['source'] for r in kept})} sources; {dropped} left out")
    return 0


def main(paths: list[str]) -> int:
    if paths[:1] == ["--tune-only"]:
        return tune_only(paths[1], paths[2:])
    rows, dropped = _read(paths, set(), set())
    sources = sorted({r["source"] for r in rows}, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
    held_sources = set(sources[: math.ceil(len(sources) * HELD_SHARE)])
    held = [r for r in rows if r["source"] in held_sources]
    tune = [r for r in rows if r["source"] not in held_sources]
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("heldout.jsonl", held), ("tune.jsonl", tune)):
        with (OUT / name).open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    n_held = len({r["source"] for r in held})
    n_tune = len({r["source"] for r in tune})
    print(
        f"heldout: {len(held)} rows from {n_held} sources; tune: {len(tune)} rows from {n_tune} sources; "
        f"{dropped} duplicates dropped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
