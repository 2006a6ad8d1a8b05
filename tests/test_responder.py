"""What the bot says, independent of Telegram: commands, diagnoses, HTML safety and message length."""

from __future__ import annotations

import pytest

from bot.core.matcher import get_matcher
from bot.core.replies import TELEGRAM_LIMIT, Markup, resolve_lang, split_message
from bot.core.responder import CAUSE_BUTTON, Responder, TriagePick

CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message."


@pytest.fixture(scope="module")
def html() -> Responder:
    return Responder(get_matcher(), Markup.HTML)


@pytest.fixture(scope="module")
def plain() -> Responder:
    return Responder(get_matcher(), Markup.PLAIN)


@pytest.mark.parametrize(
    ("arg", "cause"),
    [
        ("1", "network"),
        ("2", "service"),
        ("3", "capacity"),
        ("4", "context"),
        ("network", "network"),
        ("网络", "network"),
        ("Context", "context"),
        ("服务中断", "service"),
        ("过载", "capacity"),
    ],
)
def test_fix_names_a_cause_by_number_or_name_in_either_language(html: Responder, arg: str, cause: str) -> None:
    assert html.find_cause(arg) == cause


def test_fix_with_error_text_diagnoses_it(html: Responder) -> None:
    answer = html.fix(CAPACITY, "en")
    assert answer.diagnosis is not None and answer.diagnosis.cause == "capacity"


def test_bare_fix_asks_for_the_error(html: Responder) -> None:
    assert "Send me the error" in html.fix("", "en").text


def test_fix_with_an_unknown_name_says_so(html: Responder) -> None:
    assert "no cause called" in html.fix("banana", "en").text


def test_causes_lists_four_with_a_button_each(html: Responder) -> None:
    answer = html.causes("en")
    assert all(f"{n}. " in answer.text for n in range(1, 5))
    assert [b.data for row in answer.buttons for b in row] == [
        CAUSE_BUTTON + c for c in ("network", "service", "capacity", "context")
    ]


def test_diagnosis_offers_the_other_causes(html: Responder) -> None:
    answer = html.diagnosis(CAPACITY, "en")
    assert "<b>3. Capacity" in answer.text
    assert CAUSE_BUTTON + "capacity" not in [b.data for row in answer.buttons for b in row]


def test_two_causes_are_both_shown_best_first(html: Responder) -> None:
    text = html.diagnosis(
        "Claude's response was interrupted. This can be caused by network problems or exceeding the maximum "
        "conversation length.",
        "en",
    ).text
    assert text.index("1. Network") < text.index("4. Context")


def test_unrecognised_text_is_answered_kindly(html: Responder) -> None:
    assert "/causes" in html.diagnosis("what a lovely day", "en").text


def test_known_non_cause_gets_its_own_answer(html: Responder) -> None:
    text = html.diagnosis("Your account has been disabled after an automatic review", "en").text
    assert "disabled" in text and "1. Network" not in text


def test_chinese_and_traditional_replies(html: Responder) -> None:
    assert "访问量太高" in html.diagnosis(CAPACITY, "zh").text
    assert "訪問量太高" in html.diagnosis(CAPACITY, "zh-hant").text


def test_every_reply_is_valid_escaped_html(html: Responder) -> None:
    text = html.diagnosis("<script>alert(1)</script> & overloaded_error 529", "en").text
    assert "<script>" not in text
    stripped = text.replace("<b>", "").replace("</b>", "")
    assert "<" not in stripped and ">" not in stripped


@pytest.mark.parametrize(
    ("code", "lang"),
    [
        ("zh-hans", "zh"),
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("zh-hant", "zh-hant"),
        ("zh-TW", "zh-hant"),
        ("zh-hk", "zh-hant"),
        ("en", "en"),
        ("ru", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_language_from_telegram_code(code: str | None, lang: str) -> None:
    assert resolve_lang(code) == lang


def test_long_replies_are_split_under_the_limit_at_line_breaks() -> None:
    text = "\n".join(f"<b>line {i}</b> " + "x" * 90 for i in range(200))
    parts = split_message(text)
    assert len(parts) > 1
    assert all(len(p) <= TELEGRAM_LIMIT for p in parts)
    assert all(p.count("<b>") == p.count("</b>") for p in parts)
    assert "\n".join(parts) == text


def test_a_single_overlong_line_is_cut_at_spaces() -> None:
    parts = split_message("word " * 2000)
    assert all(len(p) <= TELEGRAM_LIMIT for p in parts) and len(parts) == 3


def test_a_usage_limit_answer_says_when_the_limit_resets_in_the_readers_zone(html: Responder) -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    now = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
    answer = html.diagnosis("Claude usage limit reached. Your limit will reset at 5pm", "en", now=now)
    assert "resets at" not in answer.text  # no zone known: not guessed
    shanghai = ZoneInfo("Asia/Shanghai")
    answer = html.with_live(answer, "en", None, now, shanghai)
    assert "resets at 17:00 (Asia/Shanghai), in 7 h 30 min." in answer.text


def test_a_too_long_answer_says_how_much_to_cut(html: Responder) -> None:
    answer = html.diagnosis("prompt is too long: 215000 tokens > 200000 maximum", "zh")
    assert "215,000" in answer.text and "15,000" in answer.text


@pytest.mark.parametrize(
    "text",
    [
        "Claude usage limit reached. Your limit will reset at 5pm (Asia/Shanghai)",
        "You've hit your limit · resets 3am (Asia/Shanghai)",
        "API Error: 429 rate_limit_error: This request would exceed your account's rate limit",
        "5-hour limit reached - resets 9pm",
        "你已达到Claude消息的限制。它会在下午5:00重置。",
        "Claude 사용 한도에 도달했습니다. 한도는 오후 7시(아시아/도쿄)에 재설정됩니다.",
    ],
)
def test_a_used_up_limit_gets_advice_about_the_limit_first(plain: Responder, text: str) -> None:
    answer = plain.diagnosis(text, "en")
    assert answer.diagnosis is not None and answer.diagnosis.variant == "limit", answer.text
    first = answer.text.split("\n1. ", 1)[1].splitlines()[0]
    assert first.startswith("Wait until the reset time")


@pytest.mark.parametrize(
    "text",
    [
        "prompt is too long: 215000 tokens > 200000 maximum",
        "Your message will exceed the length limit for this chat. Try shortening your message",
        "This conversation is too long to continue.",
        "Claude hit the maximum length for this conversation. Please start a new conversation",
    ],
)
def test_a_chat_too_long_gets_advice_about_the_chat_first(plain: Responder, text: str) -> None:
    answer = plain.diagnosis(text, "en")
    assert answer.diagnosis is not None and answer.diagnosis.cause == "context"
    assert answer.diagnosis.variant is None, answer.text
    assert answer.text.split("\n1. ", 1)[1].startswith("Start a new chat")


def test_fix_4_shows_both_kinds_of_advice(plain: Responder) -> None:
    text = plain.fix("4", "zh").text
    assert "开始一个新对话" in text and "等到提示里的重置时间" in text


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Claude 現在無法回應，服務暫時中斷", "zh-hant"),
        ("Claude 现在无法回应，服务暂时中断", "zh"),
        ("我的 claude 又出問題了", "zh-hant"),
        ("API Error: 529 Overloaded", None),
        ("Claudeの使用制限に達しました", None),
        ("529", None),
    ],
)
def test_the_text_decides_the_reply_language_only_when_it_is_chinese(text: str, lang: str | None) -> None:
    from bot.core.replies import reply_lang_of

    assert reply_lang_of(text) == lang


@pytest.mark.parametrize("lang", ["en", "zh", "zh-hant"])
def test_help_names_every_language_lang_accepts(plain: Responder, lang: str) -> None:
    assert "(en, zh, zh-hant)" in plain.help(lang).text.replace("（", "(").replace("）", ")")


def test_an_unknown_cause_is_answered_with_the_numbers_there_are(plain: Responder) -> None:
    assert "a number 1-4 or a name" in plain.fix("banana", "en").text


@pytest.mark.parametrize(
    ("data", "with_kb", "without_kb"),
    [
        ("tri:message:0:-:zh-hant", "zh-hant", "zh-hant"),
        ("tri:message:0:-", None, None),
        ("tri:message:0:-:fr", "refused", "fr"),
        ("tri:message:0:-:EN!", "refused", "refused"),
    ],
)
def test_a_triage_buttons_language_is_one_the_knowledge_base_answers_in(
    plain: Responder, data: str, with_kb: str | None, without_kb: str | None
) -> None:
    for kb, expected in ((plain.kb, with_kb), (None, without_kb)):
        pick = TriagePick.parse(data, kb)
        assert (pick.lang if pick is not None else "refused") == expected


def test_a_triage_button_in_a_language_the_knowledge_base_lacks_is_refused(plain: Responder) -> None:
    # Parsed without the knowledge base, any language code passes: the responder is the one to refuse it.
    pick = TriagePick.parse("tri:message:0:-:fr")
    assert pick is not None and plain.triage_pick(pick, "en") is None
