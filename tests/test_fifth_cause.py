"""Causes and languages are data: a knowledge base with a fifth cause and a third language (tests/kbfixture.py)
goes through the core (matcher, replies, live lines, evaluation) and check-kb with no code change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.evaluate import Case, evaluate, labels
from bot.core.knowledge import KnowledgeBase, load_knowledge
from bot.core.live import Live, wants_status
from bot.core.matcher import Diagnosis, Matcher
from bot.core.notify import diff
from bot.core.replies import Markup, localize, reply_lang_of, resolve_lang
from bot.core.responder import CAUSE_BUTTON, Responder, TriagePick
from bot.core.statuspage import parse_summary
from tests.fake_statuspage import summary
from tests.kbfixture import (
    BUTTONS_PER_ROW,
    FIFTH_CAUSE,
    FIFTH_ERROR,
    FIFTH_LIVE,
    FIFTH_NAME,
    FIFTH_NUMBER,
    THIRD_LANG,
    THIRD_MARK,
    THIRD_ZONE,
    build_kb,
)

# Tuesday 2026-03-10 15:00 UTC: inside the shipped peak window (05:00-11:00 in Los Angeles).
IN_PEAK = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
PARIS = ZoneInfo(THIRD_ZONE)


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_kb(tmp_path_factory.mktemp("fifth"))


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return load_knowledge(kb_dir)


@pytest.fixture(scope="module")
def responder(kb: KnowledgeBase) -> Responder:
    return Responder(Matcher(kb), Markup.PLAIN)


def test_check_kb_accepts_it(kb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["check-kb", str(kb_dir)]) == 0
    assert "5 causes" in capsys.readouterr().out


def test_the_fifth_cause_and_the_third_language_are_loaded(kb: KnowledgeBase) -> None:
    assert kb.cause_ids[-1] == FIFTH_CAUSE and kb.cause_by_number(FIFTH_NUMBER) == kb.entry(FIFTH_CAUSE)
    assert kb.languages == ("en", "zh", THIRD_LANG)
    assert kb.reply_languages == ("en", "zh", THIRD_LANG, "zh-hant")


@pytest.mark.parametrize("text", [FIFTH_ERROR, "设备时间与服务器时间相差超过五分钟，请求被拒绝"])
def test_the_fifth_cause_is_diagnosed(responder: Responder, text: str) -> None:
    d = responder.matcher.diagnose(text)
    assert (d.cause, d.confidence >= responder.kb.thresholds.strict) == (FIFTH_CAUSE, True)


@pytest.mark.parametrize("arg", [str(FIFTH_NUMBER), FIFTH_CAUSE, FIFTH_NAME, "时钟不同步", "clock"])
def test_fix_finds_the_fifth_cause_by_number_or_name(responder: Responder, arg: str) -> None:
    assert responder.find_cause(arg) == FIFTH_CAUSE


@pytest.mark.parametrize("lang", ["en", "zh", THIRD_LANG, "zh-hant"])
def test_causes_lists_the_fifth_with_its_number_and_a_button(responder: Responder, lang: str) -> None:
    answer = responder.causes(lang)
    title = localize(responder.kb.entry(FIFTH_CAUSE).title[responder.kb.base_lang(lang)], lang)
    assert f"{FIFTH_NUMBER}. {title}" in answer.text
    assert [b.data for row in answer.buttons for b in row][-1] == CAUSE_BUTTON + FIFTH_CAUSE


@pytest.mark.parametrize(
    ("exclude", "sizes"), [(None, [BUTTONS_PER_ROW, 5 - BUTTONS_PER_ROW]), ("network", [BUTTONS_PER_ROW, 1])]
)
def test_the_cause_buttons_are_laid_out_as_the_knowledge_base_says(
    responder: Responder, exclude: str | None, sizes: list[int]
) -> None:
    assert [len(row) for row in responder.cause_buttons("en", exclude=exclude)] == sizes


@pytest.mark.parametrize(("line", "wanted"), [("status", "status" in FIFTH_LIVE), ("peak", "peak" in FIFTH_LIVE)])
def test_the_fifth_causes_live_lines_follow_its_file(kb: KnowledgeBase, line: str, wanted: bool) -> None:
    d = Diagnosis(cause=FIFTH_CAUSE, confidence=1.0)
    live = Live(kb, Markup.PLAIN)
    lines = live.diagnosis_lines(d, parse_summary(summary("major")), IN_PEAK, PARIS, "en")
    shown = {"status": any("Status page" in x for x in lines), "peak": any("peak" in x.lower() for x in lines)}
    assert shown[line] == wanted
    if line == "status":
        assert live.wants_status(d) == wants_status(d, kb) == wanted


def test_every_string_is_in_the_third_language(kb: KnowledgeBase) -> None:
    assert all(kb.strings[key][THIRD_LANG].startswith(THIRD_MARK) for key in kb.strings)


def third_language_pages(responder: Responder) -> dict[str, str]:
    """Every page the core renders, in the third language."""
    kb, lang = responder.kb, THIRD_LANG
    pages = {
        "start": responder.start(lang).text,
        "help": responder.help(lang).text,
        "causes": responder.causes(lang).text,
        "no match": responder.diagnosis("the weather is lovely today", lang, strict=True).text,
        "known": responder.diagnosis("Your account has been disabled after an automatic review", lang).text,
        "media": responder.media(lang).text,
    }
    for cause in kb.causes:
        pages[f"cause {cause.id}"] = responder.cause_page(cause.id, lang).text
        pages[f"diagnosis {cause.id}"] = responder.diagnosis(cause.signatures[0].text, lang).text
    assert kb.triage is not None
    for question in kb.triage.questions:
        pages[f"triage {question}"] = responder.triage(lang, question).text
    live = Live(kb, Markup.PLAIN)
    page = parse_summary(summary("major"))
    pages["status"] = live.status_page(page, "https://status.claude.com", IN_PEAK, PARIS, lang)
    pages["status unavailable"] = live.status_unavailable("timeout", "https://status.claude.com", lang)
    [event] = diff(diff(None, parse_summary(summary("ok")))[1], page)[0]
    pages["incident"] = live.event(event, IN_PEAK, PARIS, lang)
    pages["tz"] = live.tz_answer("tz_show", IN_PEAK, PARIS, lang)
    return pages


def test_the_third_language_renders_every_page(responder: Responder) -> None:
    pages = third_language_pages(responder)
    untranslated = [name for name, text in pages.items() if THIRD_MARK not in text]
    assert not untranslated


@pytest.mark.parametrize(
    ("code", "lang"), [("fr", THIRD_LANG), ("fr-CA", THIRD_LANG), ("fr_FR.UTF-8", THIRD_LANG), ("de", "en")]
)
def test_a_language_code_resolves_to_the_third_language(kb: KnowledgeBase, code: str, lang: str) -> None:
    assert resolve_lang(code, kb) == lang


def test_the_third_language_assumes_its_own_time_zone(kb: KnowledgeBase) -> None:
    assert Live(kb, Markup.PLAIN).user_zone(None, THIRD_LANG) == PARIS


def test_a_triage_asked_in_the_third_language_goes_on_in_it(responder: Responder) -> None:
    question = responder.triage(THIRD_LANG)
    pick = TriagePick.parse(question.buttons[0][0].data, responder.kb)
    assert pick is not None and pick.lang == THIRD_LANG
    step = responder.triage_pick(pick, "en")
    assert step is not None and THIRD_MARK in step.text


def test_pasted_chinese_is_still_answered_in_chinese(kb: KnowledgeBase) -> None:
    assert reply_lang_of("Claude 現在無法回應，服務暫時中斷", kb) == "zh-hant"


def test_the_evaluation_counts_the_fifth_cause(kb: KnowledgeBase) -> None:
    assert FIFTH_CAUSE in labels(kb)
    report = evaluate(Matcher(kb), [Case((FIFTH_CAUSE,), FIFTH_ERROR), Case(("none",), "lunch at noon?")])
    assert (report.cause_correct, report.cause_cases, report.false_positives) == (1, 1, 0)
    assert f"{FIFTH_CAUSE:<10}" in report.format()


def test_the_cause_buttons_of_the_shipped_knowledge_base_are_two_to_a_row() -> None:
    kb = load_knowledge()
    rows = Responder(Matcher(kb), Markup.PLAIN).cause_buttons("en")
    assert [len(row) for row in rows] == [2, 2]
