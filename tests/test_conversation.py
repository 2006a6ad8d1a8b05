"""The conversation layer (bot/conversation.py) driven directly, with no Telegram and no HTTP: an in-memory store, a
fixed clock, and tables of cases for the language policy, the settings commands, the auto-answer rules, buttons,
inline results and edits. Handler wiring is in tests/test_handlers.py; real HTTP in tests/test_bot_e2e.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.conversation import COOLDOWN_SECONDS, Conversation, IsAdmin, Pressed, Sender, text_lang
from bot.cooldown import Cooldown
from bot.core.matcher import get_matcher
from bot.core.replies import Markup
from bot.core.responder import Answer, Responder
from bot.core.statuspage import Component, StatusSummary
from bot.services.memory_store import MemoryStore
from bot.services.status import StatusError
from bot.services.store import ChatSettings

FIXED = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
CAPACITY = "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon."
NETWORK = "Request timed out. Check your internet connection and proxy settings"
# Too short to say what language it is in: the reader's settings decide.
SHORT = "API 529"
TRADITIONAL = "Claude 現在無法回應，服務暫時中斷"
SIMPLIFIED = "我们无法连接到Claude。请检查你的网络连接并重试。"
VAGUE = "claude keeps cutting off mid answer"
UNSURE = "claude keeps timing out"
CHATTER = "morning all, anyone tried the new Sonnet for poetry?"
ALICE = 1001
BOB = 1002
GROUP = -1001234567890
OTHER_GROUP = -1009876543210
MATCHER = get_matcher()


class Clock:
    """A clock the test moves by hand; both the conversation and its local cooldown read it."""

    def __init__(self) -> None:
        self.at = FIXED

    def __call__(self) -> datetime:
        return self.at


def conversation(store: MemoryStore | None = None, **kwargs: object) -> Conversation:
    return Conversation(Responder(MATCHER, Markup.HTML), store or MemoryStore(), now=lambda: FIXED, **kwargs)  # type: ignore[arg-type]


def clocked(clock: Clock, store: MemoryStore) -> Conversation:
    """A conversation whose store claims and local cooldown both follow `clock` (the default cooldown reads the wall
    clock, which the test can't move)."""
    cooldown = Cooldown(COOLDOWN_SECONDS, clock=lambda: clock().timestamp())
    return Conversation(Responder(MATCHER, Markup.HTML), store, now=clock, cooldown=cooldown)


def private(user_id: int = ALICE, client_lang: str | None = "en") -> Sender:
    return Sender(chat_id=user_id, user_id=user_id, private=True, client_lang=client_lang)


def group(
    user_id: int = ALICE, client_lang: str | None = "en", *, chat_id: int = GROUP, automated: bool = False
) -> Sender:
    return Sender(chat_id=chat_id, user_id=user_id, private=False, client_lang=client_lang, automated=automated)


async def admin() -> bool:
    return True


async def member() -> bool:
    return False


async def never_asked() -> bool:
    raise AssertionError("admin rights were checked where they do not matter")


def feedback(answer: Answer) -> list[str]:
    return [b.data for row in answer.buttons for b in row if b.data.startswith("fb:")]


def button_data(buttons: tuple[tuple[object, ...], ...] | None) -> list[str]:
    return [b.data for row in buttons or () for b in row]  # type: ignore[attr-defined]


# --- the language policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TRADITIONAL, "zh-hant"),
        (SIMPLIFIED, "zh"),
        (CAPACITY, "en"),
        (SHORT, None),
        ("hello", None),
        ("Claude が応答しません", None),
        ("Ошибка соединения с сервером Claude", None),
    ],
    ids=["traditional", "simplified", "english", "short", "one-word", "japanese", "cyrillic"],
)
def test_a_text_decides_its_language_only_when_it_is_clearly_chinese_or_english(
    text: str, expected: str | None
) -> None:
    assert text_lang(text) == expected


@dataclass(frozen=True)
class LangCase:
    text: str
    client: str | None
    expected: str
    user_lang: str | None = None
    group_lang: str | None = None
    in_group: bool = False


LANG_CASES = {
    "traditional-paste-from-an-english-client": LangCase(TRADITIONAL, "en", "zh-hant"),
    "simplified-paste-from-an-english-client": LangCase(SIMPLIFIED, "en", "zh"),
    "english-paste-from-a-zh-client": LangCase(CAPACITY, "zh-hans", "en"),
    "english-paste-beats-the-users-lang": LangCase(CAPACITY, "en", "en", user_lang="zh"),
    "traditional-paste-beats-the-users-lang": LangCase(TRADITIONAL, "en", "zh-hant", user_lang="en"),
    "short-paste-follows-a-simplified-client": LangCase(SHORT, "zh-hans", "zh"),
    "short-paste-follows-a-traditional-client": LangCase(SHORT, "zh-hant", "zh-hant"),
    "short-paste-follows-the-users-lang": LangCase(SHORT, "en", "zh", user_lang="zh"),
    "short-paste-follows-the-groups-lang": LangCase(SHORT, "en", "zh", group_lang="zh", in_group=True),
    "the-users-lang-beats-the-groups": LangCase(SHORT, "zh", "en", user_lang="en", group_lang="zh", in_group=True),
    "an-unknown-client-language-gets-the-default": LangCase(SHORT, "fr", "en"),
    "no-client-language-gets-the-default": LangCase(SHORT, None, "en"),
}


@pytest.mark.parametrize("case", LANG_CASES.values(), ids=LANG_CASES.keys())
async def test_the_answer_language_follows_the_paste_then_user_then_group_then_client(case: LangCase) -> None:
    store = MemoryStore()
    if case.user_lang:
        await store.set_user_lang(ALICE, case.user_lang)
    if case.group_lang:
        await store.set_chat_lang(GROUP, case.group_lang)
    c = conversation(store)
    sender = group(client_lang=case.client) if case.in_group else private(client_lang=case.client)
    answer = await c.diagnose(case.text, sender)
    # The oracle: the same text answered with the language forced, as the CLI's --lang does.
    assert answer.text == (await c.diagnose(case.text, sender, lang=case.expected)).text


async def test_pasted_traditional_chinese_is_answered_in_traditional_characters() -> None:
    text = (await conversation().diagnose(TRADITIONAL, private(client_lang="en"))).text
    assert "服務" in text and "服务" not in text


# --- /lang and /autoreply --------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", MATCHER.kb.reply_languages)
async def test_lang_accepts_every_language_the_knowledge_base_answers_in(lang: str) -> None:
    store = MemoryStore()
    answer = await conversation(store).set_lang(lang.upper(), private(), never_asked)
    assert (await store.user(ALICE)).lang == lang
    assert answer == conversation().responder.say("lang_set", lang)


@pytest.mark.parametrize("choice", ["fr", "klingon", "", "zh_TW"])
async def test_lang_refuses_other_languages_and_lists_the_accepted_ones(choice: str) -> None:
    store = MemoryStore()
    answer = await conversation(store).set_lang(choice, private(), never_asked)
    assert (await store.user(ALICE)).lang is None
    assert answer.text.startswith("Usage: /lang") and ", ".join(MATCHER.kb.reply_languages) in answer.text


@dataclass(frozen=True)
class AdminCase:
    command: str
    args: str
    is_admin: IsAdmin
    lang: str | None
    autoreply: bool
    reply_key: str


ADMIN_CASES = {
    "an-admin-sets-the-groups-language": AdminCase("lang", "zh", admin, "zh", True, "group_lang_set"),
    "a-member-may-not-set-the-groups-language": AdminCase("lang", "zh", member, None, True, "admins_only"),
    "an-admin-turns-autoreply-off": AdminCase("autoreply", "off", admin, None, False, "autoreply_off"),
    "a-member-may-not-turn-autoreply-off": AdminCase("autoreply", "off", member, None, True, "admins_only"),
}


@pytest.mark.parametrize("case", ADMIN_CASES.values(), ids=ADMIN_CASES.keys())
async def test_group_settings_are_changed_by_admins_only(case: AdminCase) -> None:
    store = MemoryStore()
    c = conversation(store)
    command = c.set_lang if case.command == "lang" else c.autoreply
    answer = await command(case.args, group(), case.is_admin)
    assert await store.chat(GROUP) == ChatSettings(case.autoreply, case.lang)
    assert answer == c.responder.say(case.reply_key, case.lang or "en")


@pytest.mark.parametrize(
    ("args", "sender", "needle"),
    [
        ("off", private(), "only works in groups"),
        ("", group(), "(now: on)"),
        ("maybe", group(), "Usage: /autoreply on or /autoreply off"),
    ],
    ids=["private-chat", "bare-says-the-state", "nonsense-gets-usage"],
)
async def test_autoreply_without_a_valid_switch_changes_nothing(args: str, sender: Sender, needle: str) -> None:
    store = MemoryStore()
    answer = await conversation(store).autoreply(args, sender, never_asked)
    assert needle in answer.text and store.chats == {}


# --- answers nobody asked for ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnaskedCase:
    text: str
    sender: Sender
    autoreply: bool = True


SILENT_CASES = {
    "private-chats-never": UnaskedCase(CAPACITY, private()),
    "automated-senders-never": UnaskedCase(CAPACITY, group(automated=True)),
    "autoreply-off-never": UnaskedCase(CAPACITY, group(), autoreply=False),
    "unsure-text-never": UnaskedCase(UNSURE, group()),
    "chatter-never": UnaskedCase(CHATTER, group()),
    "a-problem-in-words-never": UnaskedCase(VAGUE, group()),
    "empty-text-never": UnaskedCase("", group()),
}


@pytest.mark.parametrize("case", SILENT_CASES.values(), ids=SILENT_CASES.keys())
async def test_no_unasked_answer(case: UnaskedCase) -> None:
    store = MemoryStore()
    await store.set_autoreply(GROUP, case.autoreply)
    assert await conversation(store).unasked(case.text, case.sender) is None


async def test_a_sure_error_in_a_group_gets_an_unasked_answer() -> None:
    answer = await conversation().unasked(CAPACITY, group())
    assert answer is not None and "3. Capacity" in answer.text


@dataclass(frozen=True)
class CooldownCase:
    second_text: str
    second_chat: int
    minutes_later: float
    answered: bool


COOLDOWN_CASES = {
    "the-same-cause-again-is-held-back": CooldownCase(CAPACITY, GROUP, 1, False),
    "another-cause-is-answered": CooldownCase(NETWORK, GROUP, 1, True),
    "another-chat-is-answered": CooldownCase(CAPACITY, OTHER_GROUP, 1, True),
    "the-same-cause-after-the-cooldown-is-answered": CooldownCase(CAPACITY, GROUP, 10, True),
}


@pytest.mark.parametrize("case", COOLDOWN_CASES.values(), ids=COOLDOWN_CASES.keys())
async def test_one_unasked_answer_per_cause_per_chat_per_cooldown(case: CooldownCase) -> None:
    clock = Clock()
    c = clocked(clock, MemoryStore())
    assert await c.unasked(CAPACITY, group()) is not None
    clock.at += timedelta(minutes=case.minutes_later)
    second = await c.unasked(case.second_text, group(BOB, chat_id=case.second_chat))
    assert (second is not None) == case.answered


async def test_the_cooldown_is_shared_by_conversations_on_one_store() -> None:
    store = MemoryStore()
    assert await conversation(store).unasked(CAPACITY, group()) is not None
    # A second replica: its own local view is empty, but the store's claim is taken.
    assert await conversation(store).unasked(CAPACITY, group(BOB)) is None


# --- /tz and /status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected", "stored"),
    [
        ("", "Your time zone: UTC (it's 10:00 there now)", None),
        ("Europe/Berlin", "OK, your time zone is now Europe/Berlin (it's 11:00 there)", "Europe/Berlin"),
        ("Mars/Olympus", "I don't know the time zone “Mars/Olympus”", None),
    ],
    ids=["bare-shows-the-zone", "a-zone-is-set", "an-unknown-zone-changes-nothing"],
)
async def test_tz(args: str, expected: str, stored: str | None) -> None:
    store = MemoryStore()
    answer = await conversation(store).tz(args, private())
    assert expected in answer.text and (await store.user(ALICE)).tz == stored


async def test_tz_shows_shanghai_time_to_a_chinese_reader() -> None:
    assert "Asia/Shanghai" in (await conversation().tz("", private(client_lang="zh"))).text


ALL_CLEAR = StatusSummary("none", "All Systems Operational", [], [Component("claude.ai", "operational")], FIXED)


class StubStatus:
    """The status page client's surface the conversation uses: `get`, `peek` and `base_url`."""

    base_url = "https://status.example.com"

    def __init__(self, summary: StatusSummary | None = ALL_CLEAR, error: str | None = None) -> None:
        self.summary, self.error = summary, error

    async def get(self) -> StatusSummary:
        if self.error is not None:
            raise StatusError(self.error)
        assert self.summary is not None
        return self.summary

    async def peek(self, max_wait: float) -> StatusSummary | None:
        return self.summary


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        (None, "Status checks are turned off"),
        (StubStatus(), "Claude status: All systems operational"),
        (StubStatus(error="HTTP 503"), "I couldn't read the status page just now (HTTP 503)"),
    ],
    ids=["off", "the-page", "the-page-fails"],
)
async def test_status(status: StubStatus | None, needle: str) -> None:
    assert needle in (await conversation(status=status).status_page(private())).text


async def test_a_question_whether_claude_is_down_gets_the_status_page() -> None:
    answer = await conversation(status=StubStatus()).diagnose("is claude down?", private())
    assert "Claude status: All systems operational" in answer.text


# --- buttons ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PressCase:
    data: str
    sender: Sender
    page: str | None
    edit: bool = True


PRESS_CASES = {
    "a-cause-edits-in-place-in-private": PressCase("fix:context", private(), "context"),
    "a-cause-is-a-new-reply-in-a-group": PressCase("fix:context", group(), "context", edit=False),
    "the-causes-edit-in-place-in-private": PressCase("causes", private(), "causes"),
    "the-causes-are-a-new-reply-in-a-group": PressCase("causes", group(), "causes", edit=False),
}


@pytest.mark.parametrize("case", PRESS_CASES.values(), ids=PRESS_CASES.keys())
async def test_pressing_a_cause_button(case: PressCase) -> None:
    c = conversation()
    expected = c.responder.causes("en") if case.page == "causes" else c.responder.cause_page(str(case.page), "en")
    assert await c.press(case.data, case.sender, ALICE, FIXED) == Pressed(expected, edit=case.edit)


@pytest.mark.parametrize(
    "data", ["", "banana", "fix:banana", "tri:nosuch:0", "fb:x:up", "fb:1:sideways", "fb:1:is:banana"]
)
async def test_unknown_button_data_does_nothing(data: str) -> None:
    assert await conversation().press(data, private(), ALICE, FIXED) == Pressed()


def first_triage_button(c: Conversation, asker: int | None) -> str:
    return c.responder.triage("en", asker=asker).buttons[0][0].data


@dataclass(frozen=True)
class TriageCase:
    asker: int | None
    presser: int
    minutes_ago: float
    toast: str | None


TRIAGE_CASES = {
    "the-asker-gets-the-next-step": TriageCase(ALICE, ALICE, 1, None),
    "anyones-triage-takes-anyone": TriageCase(None, BOB, 1, None),
    "another-users-press-gets-a-toast": TriageCase(ALICE, BOB, 1, "These questions are for the person who asked"),
    "a-press-after-the-timeout-gets-a-toast": TriageCase(ALICE, ALICE, 16, "This question has expired"),
}


@pytest.mark.parametrize("case", TRIAGE_CASES.values(), ids=TRIAGE_CASES.keys())
async def test_pressing_a_triage_button(case: TriageCase) -> None:
    c = conversation()
    sent_at = FIXED - timedelta(minutes=case.minutes_ago)
    pressed = await c.press(first_triage_button(c, case.asker), group(case.presser), case.presser, sent_at)
    if case.toast is None:
        assert pressed.answer is not None and pressed.edit and pressed.toast is None
    else:
        assert pressed.answer is None and pressed.toast is not None and pressed.toast.startswith(case.toast)


@dataclass(frozen=True)
class VoteCase:
    suffix: str
    sender: Sender
    vote: str
    toast: str
    buttons: str  # "none" (left as they are), "cleared", or "causes" ("which was it?")


VOTE_CASES = {
    "up-in-private-thanks-and-clears-the-buttons": VoteCase("up", private(), "up", "Thanks", "cleared"),
    "down-in-private-asks-which-it-was": VoteCase("down", private(), "down", "Which was it?", "causes"),
    "a-correction-is-a-down-vote": VoteCase("is:network", private(), "down", "Thanks", "cleared"),
    "none-of-these-is-a-down-vote": VoteCase("is:none", private(), "down", "Thanks", "cleared"),
    "up-in-a-group-leaves-the-buttons": VoteCase("up", group(), "up", "Thanks", "none"),
    "down-in-a-group-leaves-the-buttons": VoteCase("down", group(), "down", "Which was it?", "none"),
}


@pytest.mark.parametrize("case", VOTE_CASES.values(), ids=VOTE_CASES.keys())
async def test_a_feedback_vote_is_recorded(case: VoteCase) -> None:
    store = MemoryStore()
    c = conversation(store)
    up = feedback(await c.diagnose(CAPACITY, case.sender))[0]
    answer_id = int(up.split(":")[1])
    pressed = await c.press(f"fb:{answer_id}:{case.suffix}", case.sender, ALICE, FIXED)
    assert store.votes == {(answer_id, ALICE): case.vote}
    assert pressed.toast is not None and pressed.toast.startswith(case.toast)
    expected = {"none": None, "cleared": (), "causes": c.correction_buttons(answer_id, "en")}[case.buttons]
    assert pressed.buttons == expected


async def test_a_vote_on_an_answer_that_does_not_exist_does_nothing() -> None:
    store = MemoryStore()
    assert await conversation(store).press("fb:99:up", private(), ALICE, FIXED) == Pressed()
    assert store.votes == {}


async def test_a_vote_is_not_recorded_without_the_operators_record() -> None:
    store = MemoryStore()
    await conversation(store).diagnose(CAPACITY, private())
    assert await conversation(store, record=False).press("fb:1:up", private(), ALICE, FIXED) == Pressed()
    assert store.votes == {}


@pytest.mark.parametrize(
    ("text", "record", "has_feedback"),
    [
        (CAPACITY, True, True),
        ("lunch plans for friday?", True, True),
        (CAPACITY, False, False),
        ("hello", True, False),
        (VAGUE, True, False),
        ("", True, False),
    ],
    ids=["a-diagnosis", "not-recognised", "no-record", "a-welcome", "a-triage", "media"],
)
async def test_feedback_buttons_appear_only_under_a_recorded_diagnosis(
    text: str, record: bool, has_feedback: bool
) -> None:
    answer = await conversation(record=record).diagnose(text, private())
    assert [d.rsplit(":", 1)[1] for d in feedback(answer)] == (["up", "down"] if has_feedback else [])


async def test_a_cause_page_asked_for_by_fix_has_no_feedback_buttons() -> None:
    answer = await conversation().fix("2", private())
    assert "2. Service disruption" in answer.text and feedback(answer) == []


# --- inline mode --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["c-network", "c-service", "c-capacity", "c-context"]),
        (CAPACITY[:80], ["d-capacity", "c-network", "c-service", "c-context"]),
        (VAGUE, ["none", "c-network", "c-service", "c-capacity", "c-context"]),
    ],
    ids=["empty-offers-the-causes", "an-error-offers-its-diagnosis-first", "words-offer-the-triage-first"],
)
async def test_inline_results(query: str, ids: list[str]) -> None:
    assert [r.id for r in await conversation().inline(query, private())] == ids


async def test_an_inline_triage_is_for_the_sender_only() -> None:
    first = (await conversation().inline(VAGUE, private(6001)))[0]
    data = button_data(first.answer.buttons)
    assert data and all(d.startswith("tri:") and ":6001:" in d for d in data)


async def test_an_inline_result_follows_the_pasted_language() -> None:
    first = (await conversation().inline(TRADITIONAL, private(client_lang="en")))[0]
    assert first.id == "d-service" and "服務" in first.title


# --- edits, and chats that go away --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remembered", "new_text", "edits"),
    [(True, CAPACITY, True), (False, CAPACITY, False), (True, "   ", False)],
    ids=["an-answered-message-edits-its-answer", "an-unanswered-message-is-left", "an-emptied-message-is-left"],
)
async def test_an_edited_message(remembered: bool, new_text: str, edits: bool) -> None:
    c = conversation()
    if remembered:
        await c.remember(ALICE, 10, 11)
    edited = await c.edited(ALICE, 10, new_text, private())
    assert (edited[0], "3. Capacity" in edited[1].text) == (11, True) if edits else edited is None


async def test_a_removed_chat_is_forgotten() -> None:
    store = MemoryStore()
    c = conversation(store)
    await c.remember(GROUP, 10, 11)
    await store.subscribe(GROUP, "en")
    await c.chat_removed(GROUP)
    assert await store.answer_for(GROUP, 10) is None and await store.subscription_count() == 0


async def test_a_moved_chat_keeps_its_settings() -> None:
    store = MemoryStore()
    await store.set_autoreply(GROUP, False)
    await conversation(store).chat_moved(GROUP, OTHER_GROUP)
    assert not (await store.chat(OTHER_GROUP)).autoreply
