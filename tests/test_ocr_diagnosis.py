"""Screenshots to diagnoses: the acceptance test of reading errors from images, on held-out texts.

Error and chatter texts come from tests/data/corpus/heldout.jsonl, chosen by a fixed rule (short texts of
the plain kinds, evenly spaced through the file), drawn by tests/screenshots.py in several styles (web banner,
dark mode, terminal, phone toast sent as a Telegram photo, JPEG, desktop app), read by one real OCR engine
and diagnosed at the normal ("asked") threshold. Nothing is tuned on these texts, and no assertion message
shows one: failures name the style and the expected and given causes only.

The issue's bar (>= 90% of error shots get the right cause) is measured end to end (22/24 on 2026-12-02; the
misses are texts the matcher does not recognise even typed in). What OCR answers for is checked on its own too:
the screenshots keep >= 90% of what the original texts get right, and chatter shots get no cause.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PIL", reason="OCR extra not installed (pip install 'claude-doctor[ocr]'): no Pillow")

from bot.core.evaluate import Case, is_correct, load_cases
from bot.core.knowledge import load_knowledge
from bot.core.matcher import Diagnosis, get_matcher
from bot.services.ocr import OcrService
from tests import screenshots

HELDOUT = Path(__file__).resolve().parent / "data" / "corpus" / "heldout.jsonl"

ERROR_KINDS = ("verbatim", "variant", "zh", "zh-hant")
MAX_CHARS = 160  # short texts keep the images small and the test fast
ERRORS_PER_CAUSE = 6
CHATTER_SHOTS = 8
REQUIRED_ACCURACY = 0.90
CAUSE_IDS = load_knowledge().cause_ids

# (name, Shot options). Six, so that each cause is drawn once in every style.
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("banner", {"style": "banner", "dark": False}),
    ("web_dark", {"style": "web_dark"}),
    ("terminal", {"style": "terminal"}),
    ("phone_toast_telegram", {"style": "phone", "dark": False, **screenshots.TELEGRAM}),
    ("banner_dark_jpeg60", {"style": "banner", "dark": True, "jpeg_quality": 60}),
    ("desktop", {"style": "desktop", "dark": False}),
)


@dataclass(frozen=True)
class Reading:
    # repr=False: a held-out text must not reach a test report through a repr.
    case: Case = field(repr=False)
    variant: str
    answer: Diagnosis = field(repr=False)  # from the text read out of the screenshot
    baseline: Diagnosis = field(repr=False)  # from the original text, for comparison


def _spread(pool: list[Case], count: int) -> list[Case]:
    """`count` cases evenly spaced through the pool (the middle of each of `count` equal slices)."""
    return [pool[(2 * i + 1) * len(pool) // (2 * count)] for i in range(min(count, len(pool)))]


def choose(cases: list[Case]) -> list[tuple[Case, str, screenshots.Shot]]:
    """The shots of the test, by a fixed rule that does not look at what the texts say."""
    short = [c for c in cases if len(c.text) <= MAX_CHARS]
    chosen: list[tuple[Case, str]] = []
    for c_index, cause in enumerate(CAUSE_IDS):
        pool = [c for c in short if c.kind in ERROR_KINDS and c.label == cause]
        for i, case in enumerate(_spread(pool, ERRORS_PER_CAUSE)):
            # Rotate the styles per cause, so no kind of text (Chinese, say) always lands in one style.
            chosen.append((case, VARIANTS[(i + c_index) % len(VARIANTS)][0]))
    chatter = [c for c in short if c.kind == "chatter" and c.causes == ("none",)]
    chosen += [(case, VARIANTS[i % len(VARIANTS)][0]) for i, case in enumerate(_spread(chatter, CHATTER_SHOTS))]
    options = dict(VARIANTS)
    return [
        (case, variant, screenshots.Shot(f"{variant}-{n}", case.text, seed=n, **options[variant]))
        for n, (case, variant) in enumerate(chosen)
    ]


@pytest.fixture(scope="module")
def service() -> Iterator[OcrService]:
    screenshots.require_real_ocr()
    svc = OcrService(max_workers=1, max_queue=0, timeout=60.0)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def readings(service: OcrService) -> list[Reading]:
    """Every shot drawn, read by the one OCR engine and diagnosed; done once for the module."""
    matcher = get_matcher()
    threshold = matcher.kb.thresholds.asked
    shots = choose(load_cases(HELDOUT))

    async def read_all() -> list[str]:
        return [await service.read(shot.data()) for _, _, shot in shots]

    texts = asyncio.run(read_all())
    return [
        Reading(
            case,
            variant,
            matcher.diagnose(text, threshold=threshold, image=True),
            matcher.diagnose(case.text, threshold=threshold),
        )
        for (case, variant, _), text in zip(shots, texts, strict=True)
    ]


def _summary(rows: list[Reading]) -> str:
    """Per-style counts and the misses as (style, expected, given): never the texts themselves."""
    right = Counter(r.variant for r in rows if is_correct(r.case, r.answer))
    total = Counter(r.variant for r in rows)
    misses = [
        (r.variant, r.case.label, r.answer.cause or r.answer.known) for r in rows if not is_correct(r.case, r.answer)
    ]
    base = sum(is_correct(r.case, r.baseline) for r in rows)
    per_style = ", ".join(f"{v} {right[v]}/{total[v]}" for v in total)
    return f"{per_style}; from the original texts: {base}/{len(rows)}; misses: {misses}"


def _errors(readings: list[Reading]) -> list[Reading]:
    return [r for r in readings if r.case.label in CAUSE_IDS]


# Every assertion below compares plain numbers: pytest prints the parts of a failed assertion, and they must
# never include a held-out text.


def test_selection_covers_every_cause_and_style(readings: list[Reading]) -> None:
    errors = _errors(readings)
    assert dict(Counter(r.case.label for r in errors)) == dict.fromkeys(CAUSE_IDS, ERRORS_PER_CAUSE)
    assert dict(Counter(r.variant for r in errors)) == {name: 4 for name, _ in VARIANTS}
    chatter = sum(r.case.label == "none" for r in readings)
    assert chatter == CHATTER_SHOTS


def test_error_screenshots_get_the_right_cause(readings: list[Reading]) -> None:
    """End to end, screenshot to cause: the issue's bar, >= 90% of error shots."""
    errors = _errors(readings)
    right, total = sum(is_correct(r.case, r.answer) for r in errors), len(errors)
    assert right >= REQUIRED_ACCURACY * total, f"{right}/{total} right: {_summary(errors)}"


def test_screenshots_keep_what_the_text_gets_right(readings: list[Reading]) -> None:
    """What OCR answers for: of the errors diagnosed right from their text, the screenshot gets >= 90% right."""
    readable = [r for r in _errors(readings) if is_correct(r.case, r.baseline)]
    right, total = sum(is_correct(r.case, r.answer) for r in readable), len(readable)
    assert total >= len(_errors(readings)) // 2  # a sample worth measuring
    assert right >= REQUIRED_ACCURACY * total, f"{right}/{total} right: {_summary(readable)}"


def test_chatter_screenshots_get_no_cause(readings: list[Reading]) -> None:
    chatter = [r for r in readings if r.case.label == "none"]
    causes = [(r.variant, r.answer.cause) for r in chatter if r.answer.cause is not None]
    given, total = len(causes), len(chatter)
    assert total == CHATTER_SHOTS
    assert given == 0, f"{given}/{total} chatter shots got a cause: {causes}"


def test_one_engine_read_every_shot(service: OcrService, readings: list[Reading]) -> None:
    loads, reads, shots = service.engine_loads, service.reads, len(readings)
    assert loads == 1
    assert reads == shots
