"""Measure the matcher on a labelled corpus: accuracy on the causes, false positives, a confusion table."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bot.core.knowledge import KnowledgeBase, default_knowledge
from bot.core.matcher import Diagnosis, Matcher
from bot.core.normalize import HANGUL, KANA, has_cjk

# Labels beside the causes: a real error that is none of them, and chatter.
NON_CAUSE_LABELS = ("other", "none")
# Answers beside the causes: a known non-cause, and nothing.
NON_CAUSE_ANSWERS = ("known", "none")


def labels(kb: KnowledgeBase) -> tuple[str, ...]:
    """What a corpus case may be labelled: the knowledge base's causes, 'other' and 'none'."""
    return (*kb.cause_ids, *NON_CAUSE_LABELS)


def predictions(kb: KnowledgeBase) -> tuple[str, ...]:
    """The confusion table's columns: the causes, 'known' and 'none'."""
    return (*kb.cause_ids, *NON_CAUSE_ANSWERS)


@dataclass(frozen=True)
class Case:
    """A labelled text: acceptable causes best first ('other' = a non-cause error, 'none' = chatter)."""

    causes: tuple[str, ...]
    text: str
    kind: str = ""
    lang: str = ""
    source: str = ""

    @property
    def label(self) -> str:
        return self.causes[0]


def load_cases(path: str | Path, kb: KnowledgeBase | None = None) -> list[Case]:
    """Read a corpus: JSON Lines ({"causes": [...], "text": ...}) or the research TSV (causes, message, ...), with
    labels from `kb` (default: `default_knowledge()`)."""
    path = Path(path)
    cases: list[Case] = []
    if path.suffix == ".tsv":
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                causes = tuple(row["causes"].split("|"))
                text = row["message"].replace(" / ", "\n")
                cases.append(Case(causes, text, "verbatim", text_lang(text), row.get("seen_in", "")))
    else:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                causes = tuple(obj["causes"])
                text = obj["text"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a corpus line: {exc}") from exc
            kind = obj.get("kind", "")
            lang = obj.get("lang") or text_lang(text, kind)
            cases.append(Case(causes, text, kind, lang, obj.get("source", "")))
    known = labels(kb or default_knowledge())
    for case in cases:
        bad = [c for c in case.causes if c not in known]
        if bad or not case.causes:
            raise ValueError(f"{path}: unknown label(s) {bad} for {case.text[:60]!r}")
    return cases


_CYRILLIC = re.compile(r"[\u0400-\u04ff]")


def text_lang(text: str, kind: str = "") -> str:
    """The language of a case that does not say: by script, and 'zh-hant' where its kind says Traditional. Latin
    text counts as English: the corpora name other Latin-script languages themselves."""
    if KANA.search(text):
        return "ja"
    if HANGUL.search(text):
        return "ko"
    if has_cjk(text):
        return "zh-hant" if kind == "zh-hant" else "zh"
    if _CYRILLIC.search(text):
        return "ru"
    return "en"


def prediction(d: Diagnosis) -> str:
    """The confusion-table column for a diagnosis."""
    if d.cause is not None:
        return d.cause
    return "known" if d.known is not None else "none"


def is_correct(case: Case, d: Diagnosis) -> bool:
    """Right: an acceptable cause; a known non-cause where 'other' is acceptable; no cause for other and chatter."""
    if d.cause is not None:
        return d.cause in case.causes
    if d.known is not None and "other" in case.causes:
        return True
    return case.label in ("other", "none")


@dataclass
class Report:
    """The figures of one evaluation run over the causes `causes` (a knowledge base's ids, in order)."""

    causes: tuple[str, ...] = ()
    total: int = 0
    cause_cases: int = 0
    cause_correct: int = 0
    negatives: int = 0
    false_positives: int = 0
    known_on_chatter: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[tuple[Case, Diagnosis]] = field(default_factory=list)

    @property
    def top1(self) -> float:
        return self.cause_correct / self.cause_cases if self.cause_cases else 1.0

    @property
    def fp_rate(self) -> float:
        return self.false_positives / self.negatives if self.negatives else 0.0

    def precision_recall(self, cause: str) -> tuple[float, float]:
        tp = sum(n for (t, p), n in self.confusion.items() if t == cause and p == cause)
        predicted = sum(n for (_, p), n in self.confusion.items() if p == cause)
        actual = sum(n for (t, _), n in self.confusion.items() if t == cause)
        return (tp / predicted if predicted else 1.0, tp / actual if actual else 1.0)

    def add(self, case: Case, d: Diagnosis) -> None:
        """Tally one diagnosed case."""
        self.total += 1
        pred = prediction(d)
        # Credit an acceptable alternative as the label it matched, so precision and recall reflect it.
        truth = pred if d.cause is not None and d.cause in case.causes else case.label
        self.confusion[(truth, pred)] += 1
        ok = is_correct(case, d)
        if case.label in self.causes:
            self.cause_cases += 1
            self.cause_correct += ok
        else:
            self.negatives += 1
            self.false_positives += not ok
            self.known_on_chatter += case.label == "none" and d.known is not None
        if not ok:
            self.misses.append((case, d))

    def format(self, show_misses: int = 0) -> str:
        out = [f"cases: {self.total}"]
        out.append(f"top-1 on the four causes: {self.top1:.1%} ({self.cause_correct}/{self.cause_cases})")
        out.append(
            f"false positives on chatter and non-causes: {self.fp_rate:.1%} "
            f"({self.false_positives}/{self.negatives}); chatter answered as a known non-cause: "
            f"{self.known_on_chatter}"
        )
        out.append("")
        out.append(f"{'cause':<10} {'precision':>9} {'recall':>7}")
        for cause in self.causes:
            p, r = self.precision_recall(cause)
            out.append(f"{cause:<10} {p:>9.1%} {r:>7.1%}")
        out.append("")
        out.append("confusion (rows: label, columns: answer)")
        columns = (*self.causes, *NON_CAUSE_ANSWERS)
        out.append(f"{'':<9}" + "".join(f"{p:>10}" for p in columns))
        for t in (*self.causes, *NON_CAUSE_LABELS):
            out.append(f"{t:<9}" + "".join(f"{self.confusion[(t, p)]:>10}" for p in columns))
        if show_misses and self.misses:
            out.append("")
            out.append("misses:")
            for case, d in self.misses[:show_misses]:
                text = case.text.replace("\n", " / ")
                out.append(f"  {'|'.join(case.causes)} -> {prediction(d)} ({d.confidence:.2f}) {text[:110]}")
        return "\n".join(out)


def evaluate(matcher: Matcher, cases: Iterable[Case], threshold: float | None = None) -> Report:
    """Diagnose every case and tally the figures."""
    report = Report(matcher.kb.cause_ids)
    for case in cases:
        report.add(case, matcher.diagnose(case.text, threshold=threshold))
    return report


def at_level(d: Diagnosis, threshold: float) -> Diagnosis:
    """What a diagnosis made with no threshold says at `threshold`: the matcher claims nothing below it."""
    if d.confidence >= threshold or not d.matched:
        return d
    return Diagnosis(cause=None, confidence=d.confidence, evidence="nothing recognised with confidence")


@dataclass
class Levels:
    """The figures of one corpus at the asked and the strict level, overall and per language."""

    asked: Report = field(default_factory=Report)
    strict: Report = field(default_factory=Report)
    by_lang: dict[str, tuple[Report, Report]] = field(default_factory=dict)

    def format(self, show_misses: int = 0, strict_detail: bool = False) -> str:
        out = [
            f"cases: {self.asked.total} ({self.asked.cause_cases} of the four causes, {self.asked.negatives} others)"
        ]
        out.append(f"{'level':<8} {'top-1 on the four causes':<26} false positives")
        for name, r in (("asked", self.asked), ("strict", self.strict)):
            out.append(
                f"{name:<8} {_share(r.cause_correct, r.cause_cases):<26} {_share(r.false_positives, r.negatives)}"
            )
        out.append("")
        out.append(f"{'language':<9} {'cases':>5}  {'top-1 asked':<16} {'FP asked':<15} {'top-1 strict':<16} FP strict")
        for lang, (a, s) in sorted(self.by_lang.items(), key=lambda kv: (-kv[1][0].total, kv[0])):
            out.append(
                f"{lang:<9} {a.total:>5}  {_share(a.cause_correct, a.cause_cases):<16} "
                f"{_share(a.false_positives, a.negatives):<15} {_share(s.cause_correct, s.cause_cases):<16} "
                f"{_share(s.false_positives, s.negatives)}"
            )
        out.append("")
        detail = self.strict if strict_detail else self.asked
        out.append(f"at the {'strict' if strict_detail else 'asked'} level:")
        out.append(detail.format(show_misses=show_misses))
        return "\n".join(out)


def _share(n: int, of: int) -> str:
    return f"{n / of:.1%} ({n}/{of})" if of else "-"


def evaluate_levels(matcher: Matcher, cases: Iterable[Case]) -> Levels:
    """Diagnose every case once and tally it at both confidence levels, overall and per language."""
    causes = matcher.kb.cause_ids
    levels = Levels(Report(causes), Report(causes))
    asked, strict = matcher.kb.thresholds.asked, matcher.kb.thresholds.strict
    for case in cases:
        d = matcher.diagnose(case.text, threshold=0.0)
        key = case.lang or text_lang(case.text, case.kind)
        lang = levels.by_lang.setdefault(key, (Report(causes), Report(causes)))
        for report, lang_report, threshold in ((levels.asked, lang[0], asked), (levels.strict, lang[1], strict)):
            verdict = at_level(d, threshold)
            report.add(case, verdict)
            lang_report.add(case, verdict)
    return levels
