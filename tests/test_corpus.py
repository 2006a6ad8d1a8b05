"""The labelled corpora, run the way tomli runs its tests/data: every verbatim research message as its own case,
and the accuracy bars on the development and held-out sets (the held-out set is never tuned on)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.core.evaluate import Case, at_level, evaluate, evaluate_levels, is_correct, load_cases, text_lang
from bot.core.matcher import get_matcher

DATA = Path(__file__).parent / "data" / "corpus"
RESEARCH = Path(__file__).resolve().parents[2] / "shared" / "research" / "claude-error-messages.tsv"
RESEARCH_COPY = DATA / "research.tsv"


def research_cases() -> list[Case]:
    # CI has shared/ beside the clone; the copy keeps the tests whole where it doesn't.
    return load_cases(RESEARCH if RESEARCH.exists() else RESEARCH_COPY)


def case_id(case: Case) -> str:
    return f"{'|'.join(case.causes)}:{case.text[:40]}"


@pytest.mark.parametrize("case", research_cases(), ids=case_id)
def test_research_message_gets_an_acceptable_answer(case: Case) -> None:
    d = get_matcher().diagnose(case.text)
    assert is_correct(case, d), f"answered {d.cause or d.known or 'nothing'} ({d.evidence})"


@pytest.mark.parametrize("case", [c for c in research_cases() if c.label == "other"], ids=case_id)
def test_research_non_cause_is_named_honestly(case: Case) -> None:
    assert get_matcher().diagnose(case.text).known is not None


# Regression bars on the sets we tune on, at the levels measured when they were set (tune: written with the
# research file; dev: new wordings; dev2: adversarial near-misses and other programs' errors; dev4c: code, logs and
# API questions full of error words; dev5: users' own descriptions with no error string; dev7a: noisy copies of
# errors; dev7b: errors from many sources; dev8a: Chinese; dev8b: short English retellings; dev9a: a week of
# private messages; dev9b: group chat written to trap the matcher; dev10: a balanced mix of every kind; dev11:
# chatter and near-misses built to draw false alarms, added last).
@pytest.mark.parametrize(
    ("name", "top1", "fp"),
    [
        ("tune.jsonl", 0.98, 0.01),
        ("dev.jsonl", 0.97, 0.01),
        ("dev2.jsonl", 0.95, 0.03),
        ("dev3.jsonl", 0.96, 0.01),
        ("dev4a.jsonl", 0.98, 0.01),
        ("dev4b.jsonl", 0.98, 0.01),
        ("dev4c.jsonl", 0.99, 0.1),
        ("dev5a.jsonl", 0.84, 0.05),
        ("dev5b.jsonl", 0.86, 0.03),
        ("dev6.jsonl", 0.96, 0.01),
        ("dev7a.jsonl", 0.99, 0.01),
        ("dev7b.jsonl", 0.99, 0.05),
        ("dev8a.jsonl", 0.96, 0.02),
        ("dev8b.jsonl", 0.96, 0.05),
        ("dev9a.jsonl", 0.92, 0.01),
        ("dev9b.jsonl", 0.97, 0.10),
        ("dev10.jsonl", 0.97, 0.01),
        ("dev11.jsonl", 0.98, 0.08),
        ("../real/tune.jsonl", 0.81, 0.20),
        ("../real/tune2.jsonl", 0.71, 0.22),
        ("../real/tune3.jsonl", 0.62, 0.30),
        ("../real/tune4.jsonl", 0.59, 0.25),
        ("../real/tune5.jsonl", 0.57, 0.27),
        ("../real/tune6.jsonl", 0.69, 0.27),
    ],
)
def test_development_sets_stay_accurate(name: str, top1: float, fp: float) -> None:
    report = evaluate(get_matcher(), load_cases(DATA / name))
    assert report.top1 >= top1, report.format(show_misses=20)
    assert report.fp_rate <= fp, report.format(show_misses=20)


def test_held_out_set_does_not_regress() -> None:
    """Issue 2's bar on the held-out set: top-1 >= 95% and <= 2% false positives (measured 95.7% and 1.6% on
    2026-12-02). Misses are not printed: nobody tunes on this set."""
    report = evaluate(get_matcher(), load_cases(DATA / "heldout.jsonl"))
    assert report.cause_cases >= 200 and report.negatives >= 150
    assert report.top1 >= 0.95, f"top-1 {report.top1:.1%}"
    assert report.fp_rate <= 0.02, f"false positives {report.fp_rate:.1%}"


def test_strict_level_makes_no_false_positives_on_held_out_chatter() -> None:
    """Group auto-answers go out at the strict level: no chatter of the held-out set may trigger one."""
    matcher = get_matcher()
    negatives = [c for c in load_cases(DATA / "heldout.jsonl") if c.label in ("none", "other")]
    wrong = [c for c in negatives if matcher.diagnose(c.text, threshold=matcher.kb.thresholds.strict).cause]
    assert not wrong, f"{len(wrong)} auto-answers to chatter or non-causes"


@pytest.mark.parametrize("level", ["asked", "strict"])
def test_one_pass_at_both_levels_equals_diagnosing_at_each(level: str) -> None:
    """`eval` diagnoses once with no threshold and reads both levels off it: the same verdicts as two passes."""
    matcher = get_matcher()
    threshold = getattr(matcher.kb.thresholds, level)
    cases = load_cases(DATA / "dev10.jsonl")
    for case in cases:
        direct = matcher.diagnose(case.text, threshold=threshold)
        derived = at_level(matcher.diagnose(case.text, threshold=0.0), threshold)
        assert (derived.cause, derived.known) == (direct.cause, direct.known), case.text


def test_case_language_is_read_from_the_script_where_the_corpus_does_not_say() -> None:
    assert [text_lang(t) for t in ("Overloaded", "服务器繁忙", "使用上限に達しました", "사용 한도", "Ошибка")] == [
        "en",
        "zh",
        "ja",
        "ko",
        "ru",
    ]
    assert text_lang("伺服器忙碌", "zh-hant") == "zh-hant"


# The real-world corpus (tests/data/real/): texts people wrote in public threads and pages, each with its source.
REAL = Path(__file__).parent / "data" / "real"


def real_rows(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (REAL / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def test_real_corpus_keeps_the_source_of_every_text_and_splits_by_source() -> None:
    tune, held = real_rows("tune.jsonl"), real_rows("heldout.jsonl")
    assert all(str(r["source"]).startswith(("https://", "http://")) for r in tune + held)
    assert not {r["source"] for r in tune} & {r["source"] for r in held}
    held_sources = len({r["source"] for r in held})
    assert held_sources >= len({r["source"] for r in tune + held}) / 3


def test_real_corpus_has_the_mix_the_issue_asks_for() -> None:
    rows = real_rows("tune.jsonl") + real_rows("heldout.jsonl")
    assert len(rows) >= 600
    assert sum(str(r["lang"]).startswith("zh") for r in rows) >= 0.3 * len(rows)
    assert sum(r["causes"][0] in ("none", "other") for r in rows) >= len(rows) / 3  # type: ignore[index]
    assert {"ja", "ko", "de", "fr", "es", "pt", "it", "ru"} <= {r["lang"] for r in rows}


def test_real_corpus_holds_no_email_address_or_key() -> None:
    secret = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+|sk-ant-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9]{20,}")
    leaks = [r["text"] for r in real_rows("tune.jsonl") + real_rows("heldout.jsonl") if secret.search(str(r["text"]))]
    assert not leaks


def test_real_held_out_set_does_not_regress() -> None:
    """Real people's text, never tuned on. Issue 9's bar is top-1 >= 95% and <= 3% false positives asked, <= 1%
    strict: NOT met. First measured 61.3% / 25.6% (strict FP 12.0%); 68.1% / 23.1% (strict FP 11.1%) at the end
    of 2026-12-03; the talk model (2026-12-04) brought strict false positives to 3.4%. This guards that level.
    Misses are not printed: nobody tunes on this set."""
    levels = evaluate_levels(get_matcher(), load_cases(REAL / "heldout.jsonl"))
    assert levels.asked.cause_cases >= 150 and levels.asked.negatives >= 100
    assert levels.asked.top1 >= 0.68, f"top-1 {levels.asked.top1:.1%}"
    assert levels.asked.fp_rate <= 0.24, f"false positives {levels.asked.fp_rate:.1%}"
    assert levels.strict.fp_rate <= 0.04, f"strict false positives {levels.strict.fp_rate:.1%}"


LABELS = {"network", "service", "capacity", "context", "other", "none"}


def test_agreement_sample_is_rows_of_the_tuning_sets_with_valid_labels() -> None:
    """The agreement study's sample (scripts/label_agreement.py) is verbatim tuning rows, each labelled three times."""
    tuning = {
        (r["source"], r["text"]): r["causes"] for name in sorted(REAL.glob("tune*.jsonl")) for r in real_rows(name.name)
    }
    sample = real_rows("agreement/tune-sample.jsonl")
    assert len(sample) == 300
    assert all(tuning.get((r["source"], r["text"])) == r["causes"] for r in sample)
    assert all(set(r["second"]) | set(r["third"]) <= LABELS for r in sample)


def test_agreement_labels_of_the_held_out_line_up_with_its_rows() -> None:
    """The held-out's second and third labels name each row by number and source; they hold no text of it."""
    held = real_rows("heldout.jsonl")
    labels = real_rows("agreement/heldout-labels.jsonl")
    assert [(r["row"], r["source"]) for r in labels] == [(i, r["source"]) for i, r in enumerate(held)]
    assert all(set(r["second"]) | set(r["third"]) <= LABELS and "text" not in r for r in labels)
