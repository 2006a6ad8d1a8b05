"""Whether a text talks about an error (advice, a PR title, docs, news) rather than reporting one: a small logistic
model over words, character n-grams and shape, trained by `scripts/train_talk.py` on the real tuning corpora."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise

from bot.core.normalize import clean

# Enough of a text to tell talk from a report (real talk is a few lines). Code: it bounds the work per message: a
# thousand hanzi make 3,000 n-grams, about a millisecond.
TALK_CHARS = 1000
_WORD = re.compile(r"[a-z\u00df-\u024f\u0400-\u04ff']+|\d+")
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
_BULLET = re.compile(r"^\s*[-*] ", re.M)


def features(text: str) -> set[str]:
    """The features the model weighs: words and word pairs, CJK 1-3-grams, and a few marks of shape."""
    raw = text[:TALK_CHARS]
    cleaned = clean(raw)
    words = _WORD.findall(cleaned)
    found = {"w:" + w for w in words}
    found.update(f"bg:{a}_{b}" for a, b in pairwise(words))
    hanzi = 0
    for run in _CJK_RUN.findall(cleaned):
        hanzi += len(run)
        for n in (1, 2, 3):
            found.update("c:" + run[i : i + n] for i in range(len(run) - n + 1))
    # Shape: docs and PR descriptions are marked up; a pasted error is one line; a question ends in one.
    if "**" in raw:
        found.add("s:bold")
    if _BULLET.search(raw):
        found.add("s:bullet")
    if "`" in raw:
        found.add("s:tick")
    if "\n" in raw.strip():
        found.add("s:multi")
    if raw.rstrip().endswith(("?", "？")):
        found.add("s:q")
    size = len(words) + hanzi / 2.5
    found.add(f"len:{min(6, int(math.log2(size + 1)))}")
    return found


@dataclass(frozen=True)
class TalkModel:
    """A logistic model: the probability that a text is talk about an error, and the level at which it is too
    likely talk for a reply nobody asked for."""

    bias: float
    weights: Mapping[str, float] = field(repr=False)
    gate: float = 0.5
    source: str = ""

    def probability(self, text: str) -> float:
        """How likely `text` is talk about an error rather than a report of one, from 0 to 1."""
        z = self.bias + sum(self.weights.get(f, 0.0) for f in features(text))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
