"""How far two careful people agree on the real corpus's labels, in the figures issue 9's bar is set in.

Usage: python scripts/label_agreement.py

Each labeller's first label is taken as an answer and scored against another's labels the way `claude-doctor eval`
scores the matcher: top-1 on the rows the other labelled as one of the four causes, false positives on the rest. The
matcher is scored the same way against each labeller. The labels are in `tests/data/real/agreement/`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.evaluate import Case, Report  # noqa: E402
from bot.core.matcher import Diagnosis, get_matcher  # noqa: E402

REAL = ROOT / "tests" / "data" / "real"
AGREEMENT = REAL / "agreement"
CAUSES = ("network", "service", "capacity", "context")


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(gold: list[list[str]], answers: list[Diagnosis]) -> str:
    """Top-1 and false positives of `answers` against the label lists `gold`, tallied as `eval` tallies them."""
    report = Report(CAUSES)
    for labels, d in zip(gold, answers, strict=True):
        report.add(Case(tuple(labels), ""), d)
    return (
        f"top-1 {report.top1:6.1%} ({report.cause_correct}/{report.cause_cases})  "
        f"false positives {report.fp_rate:5.1%} ({report.false_positives}/{report.negatives})"
    )


def as_answer(label: str) -> Diagnosis:
    """A labeller's first label as the matcher's answer: a cause, a known non-cause ('other'), or nothing."""
    if label in CAUSES:
        return Diagnosis(cause=label, confidence=1.0)
    return Diagnosis(cause=None, confidence=1.0, known=label if label == "other" else None)


def table(name: str, texts: list[str], labellers: dict[str, list[list[str]]]) -> None:
    matcher = get_matcher()
    answers = {who: [as_answer(labels[0]) for labels in rows] for who, rows in labellers.items()}
    answers["matcher"] = [matcher.diagnose(t) for t in texts]
    print(f"{name}: {len(texts)} rows; the answer of each (row) scored against the labels of each (column)")
    for who, said in answers.items():
        for gold_name, gold in labellers.items():
            if gold_name != who:
                print(f"  {who:<10} against {gold_name:<10} {score(gold, said)}")
    print()


def main() -> None:
    sample = read(AGREEMENT / "tune-sample.jsonl")
    held, labels = read(REAL / "heldout.jsonl"), read(AGREEMENT / "heldout-labels.jsonl")
    for name, rows, extra in (
        ("a sample of the tuning sets (the matcher was tuned and its models trained on these)", sample, sample),
        (
            "the held-out set (never tuned on; the second and third labels were made blind, after the split)",
            held,
            labels,
        ),
    ):
        labellers = {"harvester": [r["causes"] for r in rows]}
        labellers |= {who: [r[who] for r in extra] for who in ("second", "third")}
        table(name, [r["text"] for r in rows], labellers)


if __name__ == "__main__":
    main()
