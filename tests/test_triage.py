"""Guided triage: a problem told in the person's own words gets a diagnosis or a few questions, never "not
recognised"; every path through the question tree lands on a fix or on how to tell the causes apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.knowledge import KnowledgeError, load_knowledge
from bot.core.matcher import Matcher, get_matcher
from bot.core.replies import Markup
from bot.core.responder import Answer, Responder, TriagePick

SHIPPED = Path(__file__).resolve().parent.parent / "knowledge"
VAGUE = [
    line
    for line in (Path(__file__).parent / "data" / "vague_reports.txt").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]


@pytest.fixture(scope="module")
def responder() -> Responder:
    return Responder(get_matcher(), Markup.PLAIN)


def is_triage(answer: Answer) -> bool:
    return bool(answer.buttons) and all(b.data.startswith("tri:") for row in answer.buttons for b in row)


def test_there_are_sixty_vague_reports_in_both_scripts() -> None:
    assert len(VAGUE) >= 60
    assert sum(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in VAGUE) >= 30


@pytest.mark.parametrize("text", VAGUE)
def test_a_vague_report_is_diagnosed_or_triaged_never_unrecognised(responder: Responder, text: str) -> None:
    lang = "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"
    answer = responder.diagnosis(text, lang)
    diagnosed = answer.diagnosis is not None and answer.diagnosis.cause is not None
    assert diagnosed or is_triage(answer), answer.text


@pytest.mark.parametrize("text", ["hi", "hello", "help", "你好", "您好，在吗"])
def test_a_greeting_gets_a_welcome_saying_what_to_send(responder: Responder, text: str) -> None:
    answer = responder.diagnosis(text, "zh" if text[0] > "\u3000" else "en")
    assert ("Paste or forward" in answer.text or "原样粘贴" in answer.text) and not is_triage(answer)


def test_chat_about_something_else_is_still_not_recognised(responder: Responder) -> None:
    answer = responder.diagnosis("lunch plans for friday?", "en")
    assert "couldn't recognise" in answer.text and not is_triage(answer)


def test_triage_is_never_started_unasked(responder: Responder) -> None:
    # Group auto-answers run at the strict level: a vague message there is left alone.
    assert "couldn't recognise" in responder.diagnosis("claude keeps cutting off mid answer", "en", strict=True).text


def leaves(responder: Responder, answer: Answer, lang: str, path: tuple[str, ...] = ()) -> list[tuple[str, Answer]]:
    out: list[tuple[str, Answer]] = []
    for row in answer.buttons:
        for button in row:
            pick = TriagePick.parse(button.data)
            assert pick is not None
            step = responder.triage_pick(pick, lang)
            assert step is not None
            where = " > ".join((*path, button.label))
            if is_triage(step):
                assert len(path) < 2, f"more than three questions: {where}"
                out += leaves(responder, step, lang, (*path, button.label))
            else:
                out.append((where, step))
    return out


@pytest.mark.parametrize("lang", ["en", "zh", "zh-hant"])
def test_every_path_of_the_tree_lands_on_a_fix_or_on_telling_the_causes_apart(responder: Responder, lang: str) -> None:
    found = leaves(responder, responder.triage(lang), lang)
    causes = {a.diagnosis.cause for _, a in found if a.diagnosis is not None}
    assert causes == {"network", "service", "capacity", "context"}
    undecided = [a for _, a in found if a.diagnosis is None]
    assert undecided and all(a.buttons for a in undecided)
    for where, answer in found:
        assert answer.diagnosis is None or "\n1. " in answer.text, where  # a cause's leaf shows its fix steps


def test_a_used_up_limit_found_by_triage_gets_the_limit_advice(responder: Responder) -> None:
    question = responder.triage("en")
    limit = next(b for row in question.buttons for b in row if "limit" in b.label)
    pick = TriagePick.parse(limit.data)
    assert pick is not None
    answer = responder.triage_pick(pick, "en")
    assert answer is not None and answer.diagnosis is not None and answer.diagnosis.variant == "limit"
    assert answer.text.split("\n1. ", 1)[1].startswith("Wait until the reset time")


def test_a_groups_triage_buttons_carry_the_askers_id(responder: Responder) -> None:
    answer = responder.diagnosis("claude keeps cutting off mid answer", "en", asker=4242)
    picks = [TriagePick.parse(b.data) for row in answer.buttons for b in row]
    assert picks and all(p is not None and p.asker == 4242 for p in picks)
    assert all(len(b.data.encode()) <= 64 for row in answer.buttons for b in row)


@pytest.mark.parametrize(
    "data",
    [
        "tri:",
        "tri:message",
        "tri:message:x",
        "tri:nope:0",
        "tri:message:99",
        "fix:x",
        "tri:message:0:-:xx",
        "tri:a:1:2:3:4",
    ],
)
def test_a_forged_triage_button_is_refused(responder: Responder, data: str) -> None:
    pick = TriagePick.parse(data)
    assert pick is None or responder.triage_pick(pick, "en") is None


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("        next: chat\n", "        next: nowhere\n", "leads to unknown question 'nowhere'"),
        ("        cause: capacity\n", "        cause: weather\n", "names unknown cause 'weather'"),
        ("        kind: limit\n", "        kind: monthly\n", "names unknown kind 'monthly' of 'context'"),
        ("        next: connection\n", "        next: message\n", "more than 3 questions"),
    ],
)
def test_a_broken_triage_tree_is_reported(kb_copy: Path, old: str, new: str, problem: str) -> None:
    path = kb_copy / "triage.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(kb_copy)
    [found] = info.value.problems
    assert found.startswith(f"{path}:") and problem in found


def test_a_knowledge_base_without_triage_answers_not_recognised(kb_copy: Path) -> None:
    (kb_copy / "triage.yaml").unlink()
    responder = Responder(Matcher(load_knowledge(kb_copy)), Markup.PLAIN)
    assert "couldn't recognise" in responder.diagnosis("claude keeps cutting off mid answer", "en").text


def test_an_undecided_triage_adds_what_is_known_now(responder: Responder) -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from bot.services.status import StatusSummary

    question = responder.triage("en")
    path = [question.buttons[-1][0]]  # no message
    step = responder.triage_pick(TriagePick.parse(path[0].data), "en")  # type: ignore[arg-type]
    assert step is not None
    step = responder.triage_pick(TriagePick.parse(step.buttons[1][0].data), "en")  # type: ignore[arg-type]
    assert step is not None
    end = responder.triage_pick(TriagePick.parse(step.buttons[-1][0].data), "en")  # type: ignore[arg-type]
    assert end is not None and end.undecided
    now = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)  # a Thursday, 06:00 in Los Angeles: peak time
    summary = StatusSummary("none", "All Systems Operational", incidents=[], components=[], fetched_at=now)
    live = responder.with_live(end, "en", summary, now, ZoneInfo("Asia/Shanghai"))
    assert live.text.startswith(end.text) and len(live.text) > len(end.text)
    assert live.buttons == end.buttons
