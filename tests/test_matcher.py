"""Behaviours of the matcher on the shapes of text users really send (the corpus tests cover breadth)."""

from __future__ import annotations

import json

import pytest

from bot.core.matcher import (
    MAX_INPUT_CHARS,
    Diagnosis,
    _required_literal,
    _status_codes,
    _without,
    diagnose,
    get_matcher,
)
from bot.core.normalize import clean

CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
INTERRUPTED = (
    "Claude's response was interrupted. This can be caused by network problems or exceeding the maximum "
    "conversation length. Please contact support if the issue persists."
)


def test_verbatim_message_is_diagnosed_with_high_confidence() -> None:
    d = diagnose(CAPACITY)
    assert d.cause == "capacity" and d.confidence >= 0.95


def test_message_naming_two_causes_reports_both() -> None:
    d = diagnose(INTERRUPTED)
    assert (d.cause, d.runner_up) == ("network", "context")


@pytest.mark.parametrize(
    "text",
    [
        "Due to unexpected capacity constraints, Claude is unable to respo",
        "Due to unexpectd capacty constraints, Claude is unable to respond to your mesage",
        "DUE TO UNEXPECTED CAPACITY CONSTRAINTS, CLAUDE IS UNABLE TO RESPOND",
        "Due\u200b to unexpected capacity constraints, Claude is unable to respond 😭",
        "Ｄｕｅ ｔｏ ｕｎｅｘｐｅｃｔｅｄ ｃａｐａｃｉｔｙ ｃｏｎｓｔｒａｉｎｔｓ",
        "DuetounexpectedcapacityconstraintsClaudeisunabletorespondtoyourmessage",
        "Due to unexpected capaclty constralnts, C1aude is unab1e to respond to your rnessage",
        "why does claude keep saying “due to unexpected capacity constraints”??",
        "Claude 一直提示 Due to unexpected capacity constraints，怎么办？",
    ],
    ids=[
        "truncated",
        "typos",
        "upper",
        "zero-width-emoji",
        "full-width",
        "no-spaces",
        "ocr",
        "question",
        "zh-sentence",
    ],
)
def test_capacity_message_survives_what_users_do_to_it(text: str) -> None:
    assert diagnose(text).cause == "capacity"


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "capacity"),
        ("anthropic.APIStatusError: {'type': 'error', 'error': {'type': 'overloaded_error'}}", "capacity"),
        ("API Error: 529", "capacity"),
        (
            'API Error: 500 {"type":"error","error":{"type":"api_error","message":"Internal server error"}}',
            "service",
        ),
        ('event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"}}', "capacity"),
    ],
    ids=["json", "python-repr", "status-code", "api-error-500", "sse"],
)
def test_structured_errors_are_read_from_their_types_and_codes(text: str, cause: str) -> None:
    assert diagnose(text).cause == cause


def test_traditional_chinese_matches_simplified_signature() -> None:
    assert diagnose("我們無法連接到Claude。請檢查你的網路連接並重試。").cause == "network"


def test_taiwan_overload_is_not_read_as_function_overloading() -> None:
    # OpenCC's Taiwan phrase table turns 過載 into 重载 (overloading a function).
    assert diagnose("伺服器過載，請稍後再試").cause == "capacity"


def test_error_inside_a_long_log_is_found() -> None:
    noise = "\n".join(f"2026-11-25T10:{i % 60:02d}:00Z INFO worker step {i} finished ok" for i in range(1200))
    text = (
        noise[:30000] + "\nAPI Error: 529 Overloaded. This is a server-side issue, usually temporary\n" + noise[:30000]
    )
    assert len(text) > 60_000
    assert diagnose(text).cause == "capacity"


def test_the_error_at_the_end_of_a_huge_paste_is_found() -> None:
    # A log's error is at its end: past the cap the first and last halves are read.
    text = "step ok\n" * (MAX_INPUT_CHARS // 4) + CAPACITY
    assert diagnose(text).cause == "capacity"


def test_the_middle_of_a_huge_paste_is_skipped_not_fatal() -> None:
    filler = "x" * MAX_INPUT_CHARS
    assert diagnose(filler + CAPACITY + filler).cause is None


@pytest.mark.parametrize("size", [4096, MAX_INPUT_CHARS])
def test_one_huge_word_is_answered(size: int) -> None:
    # Typo repair skips words longer than any it knows: their deletions would cost the square of their length.
    assert not diagnose("a" * size).matched
    assert diagnose("a" * size + " API Error: 529 Overloaded").cause == "capacity"


def test_one_megabyte_of_text_is_answered() -> None:
    assert isinstance(diagnose("lorem ipsum " * 90_000), Diagnosis)


@pytest.mark.parametrize("text", ["", "   \n\t ", "😀😀🎉", "\x00\x01\x02", "!!!???"])
def test_text_without_words_gets_no_diagnosis(text: str) -> None:
    d = diagnose(text)
    assert not d.matched and d.confidence == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "hi everyone, good morning!",
        "the capacity of this stadium is 50,000 people",
        "please check back soon for the schedule",
        "Claude is great at writing poems",
        "今天天气不错，大家周末愉快",
    ],
)
def test_ordinary_chat_is_left_alone(text: str) -> None:
    assert diagnose(text).cause is None


@pytest.mark.parametrize(
    ("denied", "reported"),
    [
        ("claude answered in two seconds, no connection issues at all today", "claude keeps having connection issues"),
        ("Claude 今天回复很快，没有报错也没掉线", "Claude 今天一直掉线"),
    ],
)
def test_a_negated_problem_is_not_reported(denied: str, reported: str) -> None:
    assert diagnose(reported).cause == "network"
    assert diagnose(denied).cause is None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("又报529了", 529),
        ("批量任务被429了", 429),
        ("打开就直接 403", 403),
        ("keep getting 529 on opus", 529),
        ("got a 429 from the api", 429),
        ("我这也用claude 全部429", 429),
        ("一直429", 429),
        ("I encountered multiple 500 errors from the API", 500),
        ("appeared as a transient 500 during a session", 500),
    ],
)
def test_a_status_code_after_a_verb_of_getting_it_counts(text: str, code: int) -> None:
    assert _status_codes(clean(text)) == {code}


@pytest.mark.parametrize("text", ["我有 500 条消息", "价格 429 元", "meet at 529 main street"])
def test_a_number_that_is_no_status_code_is_left_alone(text: str) -> None:
    assert _status_codes(clean(text)) == set()


def test_a_status_code_misread_by_ocr_still_counts() -> None:
    assert diagnose("APl Error: 5O3 Service Unavai1able").cause == "service"


def test_an_errors_own_we_is_not_chat() -> None:
    # Status pages speak as "we"; "we" in a user's own words marks chat and costs a cue-only match.
    assert diagnose("We are currently investigating this issue.").cause == "service"
    assert diagnose("we are currently investigating why our build is slow").cause is None


def test_a_tip_about_an_error_is_not_a_report_of_it() -> None:
    assert diagnose("pro tip: when claude is overloaded at peak hours, switch to sonnet").cause is None
    assert diagnose("claude is overloaded at peak hours, switching to sonnet").cause == "capacity"


@pytest.mark.parametrize(
    "title",
    [
        "fix: retry on Anthropic 529 overloaded errors",
        "feat(api): fall back to Sonnet when Opus is overloaded",
        "[Feature Request] show a clearer message on Connection Error",
        "feat: 为普通Claude账户添加529错误处理功能",
    ],
)
def test_a_commit_subject_or_feature_request_is_not_a_report(title: str) -> None:
    assert diagnose(title, strict=True).cause is None


def test_a_bug_report_title_is_still_a_report() -> None:
    assert diagnose("[BUG] API Error: 529 Overloaded").cause == "capacity"


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("Claude 사용 한도에 도달했습니다. 한도는 오후 7시(아시아/도쿄)에 재설정됩니다.", "context"),
        ("予期せぬ容量制限により、Claudeは現在応答できません", "capacity"),
        ("Claude tornerà presto. Claude sta riscontrando un’interruzione temporanea del servizio.", "service"),
        ("Claude: hai raggiunto il limite di utilizzo, riprova più tardi", "context"),
        ("Claude: ошибка сети, проверьте подключение", "network"),
    ],
)
def test_claudes_messages_in_the_other_languages_its_apps_ship_in(text: str, cause: str) -> None:
    assert diagnose(text).cause == cause


def test_a_screenshots_chat_titles_are_not_tips() -> None:
    # The desktop app's sidebar lists chat titles; "面试" (an interview) reads as talk about errors in a message.
    shot = "新对话\n最近\n周报润色\n英语面试准备\n出错了\n网络连接失败，请检查你的网络后重试。\n重试"
    assert get_matcher().diagnose(shot, image=True).cause == "network"
    assert get_matcher().diagnose(shot).cause is None


def test_asking_what_a_quoted_error_means_reports_it() -> None:
    assert diagnose("is 'api_error' something I can fix myself?").cause == "service"
    assert diagnose("is api_error something I can fix myself?").cause is None


def test_a_short_word_is_corrected_only_one_edit_away() -> None:
    # "than" is two edits from the trouble word "hang": read as it, a plan question became a usage-limit report.
    assert diagnose("does the pro plan have a higher usage limit than free?").cause is None


def test_an_error_type_misread_by_ocr_still_counts() -> None:
    assert diagnose("net::ERR_C0NNECTl0N_CL0SED").cause == "network"


def test_a_platform_that_runs_claude_is_not_another_programs_error() -> None:
    assert diagnose("docker: Error response from daemon: connection timed out, no such host").cause is None
    assert diagnose("Claude Code inside my docker container: connection timed out every time").cause == "network"


def test_a_signature_held_whole_beats_one_it_only_opens_like() -> None:
    assert diagnose("Claude is currently experiencing high demand").cause == "capacity"


def test_the_users_own_surroundings_count_against_claude_only_when_claude_is_not_named() -> None:
    assert diagnose("校园网又断了，宿舍里什么都打不开").cause is None
    assert diagnose("校园网访问 Claude 一直超时，换手机热点就好了").cause == "network"


def test_known_non_cause_is_reported_as_known() -> None:
    d = diagnose("Your credit balance is too low to access the Anthropic API.")
    assert (d.cause, d.known) == (None, "billing")


def test_strict_level_refuses_what_asked_level_accepts() -> None:
    text = "claude keeps timing out"
    assert diagnose(text).cause == "network"
    assert diagnose(text, strict=True).cause is None


def test_json_shape() -> None:
    obj = diagnose(CAPACITY).to_json()
    assert set(obj) == {"cause", "confidence", "known", "runner_up", "variant", "evidence"}
    assert 0 <= obj["confidence"] <= 1
    json.dumps(obj)
    assert "capacity" in obj["evidence"]


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        ("waituntil[0-9]", "waituntil"),
        ("messages?until[0-9]", "message"),
        ("[0-9]{1,3}messages?(remaining|left)", "message"),
        ("等到(下午|凌晨)?[0-9]{1,4}点", "等到"),
        ("(还剩|只剩)[0-9]{1,3}条", "条"),
        ("(new|fresh)chat", "chat"),
        ("ab|cd", ""),
        (r"a\dbc", "bc"),
    ],
)
def test_a_pattern_is_tried_only_where_its_required_text_occurs(pattern: str, needle: str) -> None:
    assert _required_literal(pattern) == needle


VOICED = ["investigating", "we are currently investigating", "currently investigating", "investigating elevated"]


@pytest.mark.parametrize("order", [VOICED, VOICED[::-1], sorted(VOICED)])
def test_cutting_cue_phrases_out_does_not_depend_on_their_order(order: list[str]) -> None:
    # The phrases come from a set, whose order changes from run to run with the hash seed.
    joined = " investigating we are currently investigating elevated err "
    assert _without(joined, "", order)[0] == " | | elevated err "


@pytest.mark.parametrize(
    ("text", "cause"),
    [("Looks like Claude is completely down", "service"), ("claude is literally down again", "service")],
)
def test_an_intensifier_inside_a_phrase_does_not_hide_it(text: str, cause: str) -> None:
    assert diagnose(text).cause == cause


def test_an_intensifier_left_out_does_not_make_an_idiom_a_report() -> None:
    assert diagnose("Claude is so down to earth compared with other chatbots").cause is None
