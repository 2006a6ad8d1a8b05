"""The conversation, without Telegram: given what somebody wrote, who and where, it decides what to say (an `Answer`
with buttons) and what to remember. The bot's handlers, the console chat and the CLI are adapters around it, so the
three answer alike: one language policy, one time-zone policy, the same live lines and the same auto-answer rules."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.cooldown import Cooldown
from bot.core.knowledge import KnowledgeBase, KnowledgeError, knowledge_version, load_knowledge
from bot.core.live import LIVE_WAIT
from bot.core.matcher import Diagnosis, Matcher
from bot.core.normalize import CJK_CHAR, HANGUL, KANA
from bot.core.peak import resolve_tz
from bot.core.replies import localize, reply_lang_of
from bot.core.responder import CAUSE_BUTTON, CAUSES_BUTTON, TRIAGE_BUTTON, Answer, Button, Responder, TriagePick
from bot.services.ledger import UNRECOGNISED
from bot.services.metrics import DIAGNOSES, FEEDBACK, OCR_SECONDS, STATUS_ERRORS
from bot.services.ocr import ImageRejected, OcrService, OcrUnavailable
from bot.services.status import StatusClient, StatusError
from bot.services.store import ChatSettings, Store, UserSettings

if TYPE_CHECKING:
    from bot.notifier import StatusNotifier

log = logging.getLogger(__name__)
# Feedback buttons: "fb:<answer id>:up|down", then "fb:<answer id>:is:<cause|none>" for what it was.
FEEDBACK_BUTTON = "fb:"
# "None of these": the answer was wrong and the text is not one of the causes.
NONE_OF_THESE = "none"
# An inline query is typed, not pasted: longer ones are cut.
INLINE_QUERY_LIMIT = 256
# Auto-answers about one cause go to one group at most this often.
COOLDOWN_SECONDS = 600.0
# The Bot API lets bots download files up to 20 MB.
MAX_DOWNLOAD = 20 * 1024 * 1024
# Letters in a text before its script says what language it is in.
_CLEAR_TEXT_LETTERS = 8

IsAdmin = Callable[[], Awaitable[bool]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Sender:
    """Who wrote and where: the chat, the user (None for an anonymous post), whether the chat is private, the
    language their client reports (Telegram's language_code, the console's locale), and whether the message came
    from a bot, via a bot or as a channel's automatic forward (never auto-answered)."""

    chat_id: int
    user_id: int | None = None
    private: bool = True
    client_lang: str | None = None
    automated: bool = False
    # Their settings and the chat's, once read for this message (so one message reads them once).
    known: tuple[UserSettings, ChatSettings] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Pressed:
    """What a button press does: an answer to show (`edit`: in place of the pressed message, else as a new reply),
    a short notice for the presser only (`toast`), or new buttons for the pressed message (`buttons`)."""

    answer: Answer | None = None
    edit: bool = True
    toast: str | None = None
    buttons: tuple[tuple[Button, ...], ...] | None = None


@dataclass(frozen=True)
class InlineResult:
    """One inline-mode result: an id, a title and description for the list, and the message it sends."""

    id: str
    title: str
    answer: Answer
    description: str = ""


@dataclass(frozen=True)
class ImageText:
    """What reading an image gave: the text, or the key of the UI string that says why there is none."""

    text: str = ""
    problem: str | None = None


def text_lang(text: str, kb: KnowledgeBase | None = None) -> str | None:
    """The language a pasted text is clearly in: Chinese (Simplified or Traditional, kept apart) or English; None
    when it is short, mixed or in another script, so the reader's settings decide."""
    chinese = reply_lang_of(text, kb)
    if chinese is not None:
        return chinese
    if CJK_CHAR.search(text) or KANA.search(text) or HANGUL.search(text):
        return None
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < _CLEAR_TEXT_LETTERS or not all(ch.isascii() for ch in letters):
        return None
    return "en"


@dataclass
class Conversation:
    """The application service: the responder (in the front end's markup), the store, the status page client (None:
    no live status), the OCR service (None: screenshots are not read), the clock and the operator's settings."""

    responder: Responder
    store: Store
    status: StatusClient | None = None
    ocr: OcrService | None = None
    now: Callable[[], datetime] = _utcnow
    # The longest a diagnosis waits for the status page before going out without the status line.
    live_wait: float = LIVE_WAIT
    operator_ids: frozenset[int] = frozenset()
    # Keep the operator's record (answers, feedback, misses); the console keeps nothing.
    record: bool = True
    misses_days: int = 30
    # The local view of auto-answer cooldowns: spares the store a claim when this process answered just now, and
    # holds when the store can't be reached.
    cooldown: Cooldown = field(default_factory=lambda: Cooldown(COOLDOWN_SECONDS))
    kb_version: str = ""

    def __post_init__(self) -> None:
        if self.cooldown.clock is time.time:
            # One clock for the whole conversation: the cooldown follows `now` (a test's, or the wall clock).
            self.cooldown.clock = lambda: self.now().timestamp()
        if not self.kb_version:
            self.kb_version = knowledge_version(self.responder.kb.directory)

    # --- language and time zone ---------------------------------------------------------------------------

    async def known(self, sender: Sender) -> Sender:
        """The sender with their settings and their chat's read (both at once), for a message that needs them."""
        if sender.known is not None:
            return sender
        user, chat = await asyncio.gather(self._user(sender), self._chat(sender))
        return replace(sender, known=(user, chat))

    async def _user(self, sender: Sender) -> UserSettings:
        if sender.known is not None:
            return sender.known[0]
        return await self.store.user(sender.user_id) if sender.user_id is not None else UserSettings()

    async def _chat(self, sender: Sender) -> ChatSettings:
        if sender.known is not None:
            return sender.known[1]
        return await self.store.chat(sender.chat_id) if not sender.private else ChatSettings()

    async def settings_lang(self, sender: Sender) -> str:
        """The reader's language when the text does not decide: their /lang, else the group's /lang, else their
        client's language."""
        chosen = (await self._user(sender)).lang or (await self._chat(sender)).lang
        return chosen or self.responder.kb.resolve_lang(sender.client_lang)

    async def lang_for(self, sender: Sender, text: str = "") -> str:
        """The language to answer `text` in: the text's own when it is clearly Chinese or English, else the reader's."""
        lang = text_lang(text, self.responder.kb)
        return lang if lang in self.responder.kb.reply_languages else await self.settings_lang(sender)

    async def zone(self, sender: Sender, lang: str) -> ZoneInfo:
        """The reader's time zone: their /tz, else the default for the answer's language."""
        return self.responder.live.user_zone((await self._user(sender)).tz, lang)

    # --- diagnoses ------------------------------------------------------------------------------------------

    async def live(self, answer: Answer, sender: Sender, lang: str, *, max_wait: float | None = None) -> Answer:
        """The answer with its live lines: the status page's view (waited for at most `max_wait` seconds, default
        live_wait, else left out) and the peak-hours line, in the reader's time zone."""
        d = answer.diagnosis
        if not answer.undecided and (d is None or d.cause is None):
            return answer
        wait = self.live_wait if max_wait is None else max_wait
        wanted = answer.undecided or self.responder.live.wants_status(d)
        summary = await self.status.peek(wait) if self.status is not None and wanted else None
        return self.responder.with_live(answer, lang, summary, self.now(), await self.zone(sender, lang))

    async def diagnose(self, text: str, sender: Sender, *, lang: str | None = None, strict: bool = False) -> Answer:
        """The answer to a message somebody addressed to the bot: the diagnosis with its live lines and feedback
        buttons, the live status for a question about it, a welcome, or triage questions (in a group, for the
        sender only). `lang` overrides the language policy (the CLI's --lang); `strict` asks for a sure answer."""
        sender = await self.known(sender)
        if not text:
            return self.responder.media(lang or await self.settings_lang(sender))
        lang = lang or await self.lang_for(sender, text)
        asker = None if sender.private else sender.user_id
        answer = self.responder.diagnosis(text, lang, asker=asker, strict=strict)
        if answer.asks_status and self.status is not None:
            return await self.status_page(sender, lang)
        answer = await self.live(answer, sender, lang)
        how = "private" if sender.private else "group"
        return await self._with_feedback(answer, lang, how, text=text, user_id=sender.user_id)

    async def unasked(self, text: str, sender: Sender) -> Answer | None:
        """The answer nobody asked for, to a group message: only a sure diagnosis, never to bots, only where the
        group's auto-answers are on, at most once per cause per group per cooldown."""
        if not text or sender.private or sender.automated:
            return None
        sender = await self.known(sender)
        if not await self.may_auto_answer(sender):
            return None
        lang = await self.lang_for(sender, text)
        answer = self.responder.diagnosis(text, lang, strict=True)
        if not await self._claim_cooldown(sender.chat_id, answer):
            return None
        answer = await self.live(answer, sender, lang)
        # Nobody asked: the answer is counted, nothing of the message is kept.
        return await self._with_feedback(answer, lang, "auto")

    async def read_image(self, data: bytes) -> ImageText:
        """The text of a downloaded image; every failure becomes the key of a message for the user."""
        if self.ocr is None:
            return ImageText(problem="image_not_enabled")
        try:
            with OCR_SECONDS.time():
                text = await self.ocr.read(data)
        except ImageRejected as exc:
            log.info("image refused: %s", exc)
            return ImageText(problem=f"image_{exc.reason}")
        except OcrUnavailable as exc:
            log.warning("OCR unavailable: %s", exc)
            return ImageText(problem="image_not_enabled")
        return ImageText(text=text) if text.strip() else ImageText(problem="image_no_text")

    async def image(
        self, read: ImageText, caption: str, sender: Sender, *, asked: bool = True, lang: str | None = None
    ) -> Answer | None:
        """The answer to a screenshot (with its caption), noting that it was read from the image; a refusal when it
        can't be read. Unasked (a group's image nobody addressed to the bot): only a sure auto-answer, else None."""
        sender = await self.known(sender)
        if not asked and not await self.may_auto_answer(sender):
            return None
        if read.problem is not None:
            if not asked:
                return None
            if caption.strip():
                return await self.diagnose(caption, sender)  # the caption may be enough on its own
            return self.responder.say(read.problem, await self.settings_lang(sender), limit=MAX_DOWNLOAD // 2**20)
        text = f"{caption}\n{read.text}".strip()
        lang = lang or await self.lang_for(sender, text)
        answer = self.responder.diagnosis(text, lang, strict=not asked, image=True)
        if not asked and not await self._claim_cooldown(sender.chat_id, answer):
            return None
        answer = await self.live(answer, sender, lang)
        note = self.responder.say("image_read_note", lang).text
        return Answer(f"{note}\n{answer.text}", answer.buttons, answer.diagnosis)

    async def edited(self, chat_id: int, message_id: int, text: str, sender: Sender) -> tuple[int, Answer] | None:
        """A message the bot answered was edited: the id of that answer and what it should say now; None when the
        bot did not answer it (or it is empty now)."""
        answer_id = await self.store.answer_for(chat_id, message_id)
        if answer_id is None or not text.strip():
            return None
        return answer_id, await self.diagnose(text, sender)

    async def remember(self, chat_id: int, message_id: int, answer_id: int) -> None:
        """The bot answered `message_id` with `answer_id`: an edit of the message edits the answer."""
        await self.store.remember_answer(chat_id, message_id, answer_id)

    async def may_auto_answer(self, sender: Sender) -> bool:
        """Whether an answer nobody asked for may go to this group message: never to bots or their posts, and
        only where the group's auto-answers are on."""
        return not sender.private and not sender.automated and (await self._chat(sender)).autoreply

    async def _claim_cooldown(self, chat_id: int, answer: Answer) -> bool:
        """Whether this sure answer may go out now: at most once per cause per chat per cooldown, claimed in the
        store (shared by every replica) and remembered here."""
        d = answer.diagnosis
        if d is None or not d.matched:
            return False
        key = d.cause or d.known or ""
        if not self.cooldown.ready(chat_id, key):
            log.debug("auto-answer about %s in chat %s held back by the cooldown", key, chat_id)
            return False
        claimed = await self.store.claim_cooldown(chat_id, key, self.now().timestamp(), self.cooldown.seconds)
        if claimed is False:
            log.debug("auto-answer about %s in chat %s already given elsewhere", key, chat_id)
            return False
        self.cooldown.mark(chat_id, key)
        return True

    async def _with_feedback(
        self, answer: Answer, lang: str, how: str, *, text: str | None = None, user_id: int | None = None
    ) -> Answer:
        """Count the answer and keep it in the operator's record (with the text of a message addressed to the bot,
        kept as a miss if it goes wrong), and put 👍 / 👎 under a diagnosis."""
        d = answer.diagnosis
        # A triage is the matcher not recognising the text: it is counted and kept as a miss, under its own buttons.
        triage = d is None and any(b.data.startswith(TRIAGE_BUTTON) for row in answer.buttons for b in row)
        if d is None and not triage:
            return answer
        d = d or Diagnosis(cause=None, confidence=0.0, evidence="guided triage")
        label = d.cause or d.known or UNRECOGNISED
        DIAGNOSES.labels(label, how).inc()
        if not self.record:
            return answer
        diagnosis_id = await self.store.record(
            label,
            d.confidence,
            lang=lang,
            how=how,
            kb_version=self.kb_version,
            now=self.now(),
            text=text,
            user_id=user_id,
        )
        if diagnosis_id is None or triage:
            return answer
        row = (
            Button("👍", f"{FEEDBACK_BUTTON}{diagnosis_id}:up"),
            Button("👎", f"{FEEDBACK_BUTTON}{diagnosis_id}:down"),
        )
        return replace(answer, buttons=(*answer.buttons, row))

    # --- commands -------------------------------------------------------------------------------------------

    async def start(self, sender: Sender) -> Answer:
        return self.responder.start(await self.settings_lang(sender))

    async def help(self, sender: Sender) -> Answer:
        return self.responder.help(await self.settings_lang(sender))

    async def causes(self, sender: Sender) -> Answer:
        return self.responder.causes(await self.settings_lang(sender))

    async def fix(self, args: str, sender: Sender) -> Answer:
        """/fix N|name: that cause's fix; /fix TEXT: the diagnosis of TEXT; bare /fix: what to send."""
        lang = await self.lang_for(sender, args)
        return await self.live(self.responder.fix(args, lang), sender, lang)

    async def set_lang(self, choice: str, sender: Sender, is_admin: IsAdmin) -> Answer:
        """/lang CODE: the user's language (in a group, an admin's /lang sets the group's)."""
        lang = await self.settings_lang(sender)
        choice = (choice.split() or [""])[0].lower()
        if choice not in self.reply_languages():
            return self.responder.say("lang_usage", lang, langs=", ".join(self.reply_languages()))
        if not sender.private:
            if not await is_admin():
                return self.responder.say("admins_only", lang)
            await self.store.set_chat_lang(sender.chat_id, choice)
            return self.responder.say("group_lang_set", choice)
        if sender.user_id is not None:
            await self.store.set_user_lang(sender.user_id, choice)
        return self.responder.say("lang_set", choice)

    def reply_languages(self) -> tuple[str, ...]:
        """Every language /lang accepts: the knowledge base's, with their script variants."""
        return self.responder.kb.reply_languages

    def base_languages(self) -> tuple[str, ...]:
        """The languages the knowledge base is written in."""
        return self.responder.kb.languages

    def default_lang(self) -> str:
        """The language for a reader nothing is known about."""
        return self.responder.kb.default_language

    async def autoreply(self, choice: str, sender: Sender, is_admin: IsAdmin) -> Answer:
        """/autoreply on|off, for group admins; bare /autoreply says which it is."""
        lang = await self.settings_lang(sender)
        if sender.private:
            return self.responder.say("private_only", lang)
        choice = (choice.split() or [""])[0].lower()
        if choice not in ("on", "off"):
            on = (await self.store.chat(sender.chat_id)).autoreply
            state = self.responder.say("state_on" if on else "state_off", lang).text
            return self.responder.say("autoreply_usage", lang, state=state)
        if not await is_admin():
            return self.responder.say("admins_only", lang)
        await self.store.set_autoreply(sender.chat_id, choice == "on")
        return self.responder.say(f"autoreply_{choice}", lang)

    async def status_page(self, sender: Sender, lang: str | None = None) -> Answer:
        """/status: Claude's status page as it is now, times in the reader's zone."""
        lang = lang or await self.settings_lang(sender)
        if self.status is None:
            return self.responder.say("status_off", lang)
        live = self.responder.live
        try:
            summary = await self.status.get()
        except StatusError as exc:
            STATUS_ERRORS.inc()
            return Answer(live.status_unavailable(str(exc), self.status.base_url, lang))
        zone = await self.zone(sender, lang)
        return Answer(live.status_page(summary, self.status.base_url, self.now(), zone, lang))

    async def tz(self, name: str, sender: Sender) -> Answer:
        """/tz [IANA name]: show or set the reader's time zone."""
        lang = await self.settings_lang(sender)
        live = self.responder.live
        name = name.strip()
        if not name or sender.user_id is None:
            return Answer(live.tz_answer("tz_show", self.now(), await self.zone(sender, lang), lang))
        try:
            zone = resolve_tz(name)
        except ValueError:
            return Answer(live.tz_unknown(name, lang))
        await self.store.set_user_tz(sender.user_id, zone.key)
        return Answer(live.tz_answer("tz_set", self.now(), zone, lang))

    async def subscribe(self, sender: Sender, is_admin: IsAdmin, notifier: StatusNotifier | None) -> Answer:
        """/subscribe: incident messages in this chat (anyone in a private chat, admins in groups)."""
        lang = await self.settings_lang(sender)
        if self.status is None or notifier is None:
            return self.responder.say("status_off", lang)
        if not sender.private and not await is_admin():
            return self.responder.say("admins_only", lang)
        # A group's messages use the zone of the admin who subscribed it; a private chat's follow the user's /tz.
        tz_name = (await self.store.user(sender.user_id)).tz if sender.user_id is not None else None
        if await self.store.subscribe(sender.chat_id, lang, tz_name) is False:
            return self.responder.say("sub_already", lang)
        answer = self.responder.say("sub_done", lang)
        summary = await self.status.peek(self.live_wait)
        if summary is None:
            return answer
        await notifier.baseline(summary)
        line = self.responder.live.status_line(summary, self.now(), await self.zone(sender, lang), lang)
        return Answer(f"{answer.text}\n\n{line}")

    async def unsubscribe(self, sender: Sender, is_admin: IsAdmin) -> Answer:
        """/unsubscribe: no more incident messages here (admins only in groups)."""
        lang = await self.settings_lang(sender)
        if not sender.private and not await is_admin():
            return self.responder.say("admins_only", lang)
        removed = await self.store.unsubscribe(sender.chat_id)
        return self.responder.say("unsub_done" if removed else "unsub_not_subscribed", lang)

    def is_operator(self, sender: Sender) -> bool:
        return sender.user_id is not None and sender.user_id in self.operator_ids

    async def reload(self, sender: Sender) -> Answer:
        """/reload (operators only): load the knowledge base again without a restart, as SIGHUP does."""
        lang = await self.settings_lang(sender)
        if not self.is_operator(sender):
            return self.responder.say("operators_only", lang)
        problems = await self.reload_knowledge()
        if problems:
            return Answer("\n".join([self.responder.say("reload_failed", lang).text, *map(html.escape, problems)]))
        return self.responder.say("reload_done", lang, version=self.kb_version)

    async def reload_knowledge(self) -> list[str]:
        """Load the knowledge base again from its folder and swap it in at once; if it has problems, keep the one
        in use and return them (each with file and line). Loading runs in a thread: answers go on meanwhile."""
        directory = self.responder.kb.directory
        try:
            matcher = await asyncio.to_thread(lambda: Matcher(load_knowledge(directory)))
        except KnowledgeError as exc:
            for problem in exc.problems:
                log.error("knowledge base not reloaded, the old one stays: %s", problem)
            return exc.problems
        self.responder = Responder(matcher, self.responder.markup)
        self.kb_version = knowledge_version(directory)
        log.info("knowledge base reloaded from %s (version %s)", directory, self.kb_version)
        return []

    async def privacy(self, sender: Sender) -> Answer:
        """/privacy: what is kept, for how long, and how to delete it."""
        return self.responder.say("privacy", await self.settings_lang(sender), days=self.misses_days)

    async def forget(self, sender: Sender) -> Answer:
        """/forget: delete every text kept from the sender."""
        gone = (await self.store.forget_user(sender.user_id) or 0) if sender.user_id is not None else 0
        return self.responder.say("forget_done", await self.settings_lang(sender), count=gone)

    async def stats(self, sender: Sender) -> Answer:
        """/stats (operators only): what the bot answered in the last 7 days, and the knowledge base version."""
        if not self.is_operator(sender):
            return self.responder.say("operators_only", await self.settings_lang(sender))
        stats = await self.store.stats(self.now(), 7)
        return Answer(f"<pre>{html.escape(stats.format(self.kb_version))}</pre>")

    async def purge(self) -> int:
        """Delete misses older than MISSES_DAYS and kept texts older than two days; how many."""
        return await self.store.purge(self.now(), self.misses_days) or 0

    async def slow_down(self, sender: Sender) -> Answer:
        """What a flooding sender is told once before the bot ignores them for a while."""
        return self.responder.say("slow_down", await self.settings_lang(sender))

    async def internal_error(self, sender: Sender) -> Answer:
        """The apology a private chat gets when its answer was lost to a bug (never the traceback)."""
        return self.responder.say("internal_error", await self.settings_lang(sender))

    async def chat_removed(self, chat_id: int) -> None:
        """The bot left or was removed: forget what it kept about the chat, its subscription included."""
        await self.store.forget_chat(chat_id)

    async def chat_moved(self, old_id: int, new_id: int) -> None:
        """A group became a supergroup with a new id: its settings and subscription go with it."""
        await self.store.move_chat(old_id, new_id)

    # --- buttons --------------------------------------------------------------------------------------------

    async def press(self, data: str, sender: Sender, presser_id: int | None, sent_at: datetime | None) -> Pressed:
        """What pressing a button does: a cause's fix or the causes (in place in a private chat, as a new reply in
        a group), the next triage step, or a vote. Unknown data does nothing."""
        sender = await self.known(sender)
        lang = await self.settings_lang(sender)
        if data.startswith(FEEDBACK_BUTTON):
            return await self._vote(data, sender, presser_id, lang)
        pick = TriagePick.parse(data, self.responder.kb)
        if pick is not None:
            return await self._triage(pick, sender, presser_id, sent_at, lang)
        responder = self.responder
        if data == CAUSES_BUTTON:
            return Pressed(responder.causes(lang), edit=sender.private)
        cause_id = data[len(CAUSE_BUTTON) :] if data.startswith(CAUSE_BUTTON) else None
        if cause_id in {c.id for c in responder.kb.causes}:
            return Pressed(responder.cause_page(cause_id, lang), edit=sender.private)  # type: ignore[arg-type]
        log.debug("unknown button data %r", data)  # user-controlled: only at DEBUG
        return Pressed()

    async def _triage(
        self, pick: TriagePick, sender: Sender, presser_id: int | None, sent_at: datetime | None, lang: str
    ) -> Pressed:
        """A triage answer: the next question or where it lands, in place. Only the person who asked may answer a
        group's triage, and only for the knowledge base's timeout."""
        triage = self.responder.kb.triage
        if triage is None:
            return Pressed()
        if pick.asker is not None and presser_id != pick.asker:
            return Pressed(toast=self.responder.say("triage_not_yours", lang).text)
        if sent_at is not None and self.now() - sent_at > timedelta(minutes=triage.timeout_minutes):
            return Pressed(toast=self.responder.say("triage_expired", lang).text)
        lang = pick.lang or lang  # the language the triage was asked in
        step = self.responder.triage_pick(pick, lang)
        if step is None:
            log.debug("unknown triage step %r", pick)  # user-controlled: only at DEBUG
            return Pressed()
        return Pressed(await self.live(step, sender, lang))

    async def _vote(self, data: str, sender: Sender, presser_id: int | None, lang: str) -> Pressed:
        """👍, 👎 (then "which was it?") or the correction: one vote per user per answer, a new one replaces it."""
        parts = data[len(FEEDBACK_BUTTON) :].split(":")
        labels = {c.id for c in self.responder.kb.causes} | {NONE_OF_THESE}
        well_formed = parts[0].isdigit() and (
            parts[1:] in (["up"], ["down"]) or (len(parts) == 3 and parts[1] == "is" and parts[2] in labels)
        )
        if not well_formed or presser_id is None or not self.record:
            log.debug("unknown feedback data %r", data)  # user-controlled: only at DEBUG
            return Pressed()
        diagnosis_id, vote = int(parts[0]), "up" if parts[1:] == ["up"] else "down"
        correction = parts[2] if len(parts) == 3 else None
        recorded = await self.store.vote(diagnosis_id, presser_id, vote, self.now(), correction=correction)
        if not recorded:
            return Pressed()
        FEEDBACK.labels(vote).inc()
        which = parts[1:] == ["down"]
        toast = self.responder.say("feedback_which" if which else "feedback_thanks", lang).text
        # Only the person asked about it sees "which was it?" in a private chat; in a group the buttons stay.
        if not sender.private:
            return Pressed(toast=toast)
        return Pressed(toast=toast, buttons=self.correction_buttons(diagnosis_id, lang) if which else ())

    def correction_buttons(self, diagnosis_id: int, lang: str) -> tuple[tuple[Button, ...], ...]:
        """ "Which was it?": every cause and "none of these", one per row."""
        kb = self.responder.kb
        base = self.responder.kb.base_lang(lang)
        rows = [
            (Button(localize(f"{c.number}. {c.name[base]}", lang), f"{FEEDBACK_BUTTON}{diagnosis_id}:is:{c.id}"),)  # type: ignore[index]
            for c in kb.causes
        ]
        none = localize(kb.text("feedback_none_of_these", base), lang)
        rows.append((Button(none, f"{FEEDBACK_BUTTON}{diagnosis_id}:is:{NONE_OF_THESE}"),))
        return tuple(rows)

    # --- inline mode ----------------------------------------------------------------------------------------

    async def inline(self, query: str, sender: Sender) -> list[InlineResult]:
        """@bot <error>: the diagnosis (and the runner-up) as results to send; an empty query offers the causes.
        Inline queries come at every keystroke: only a status already cached is used."""
        responder = self.responder
        sender = await self.known(sender)
        lang = await self.settings_lang(sender)
        text = query[:INLINE_QUERY_LIMIT].strip()
        results: list[InlineResult] = []
        if text:
            lang = await self.lang_for(sender, text)
            base = self.responder.kb.base_lang(lang)
            answer = await self.live(responder.diagnosis(text, lang), sender, lang, max_wait=0.0)
            d = answer.diagnosis
            if d is not None and d.matched:
                entry = responder.kb.entry(d.cause or d.known or "")
                results.append(InlineResult(f"d-{entry.id}", localize(entry.title[base], lang), answer, d.evidence))
                if d.runner_up:
                    title = localize(responder.kb.entry(d.runner_up).title[base], lang)
                    results.append(InlineResult(f"r-{d.runner_up}", title, responder.cause_page(d.runner_up, lang)))
            else:
                # A problem told in words: the triage questions, for the sender only (the results are personal).
                answer = responder.diagnosis(text, lang, asker=sender.user_id)
                hint = html.unescape(responder.say("inline_no_match", lang).text)
                results.append(InlineResult("none", hint, answer))
        base = self.responder.kb.base_lang(lang)
        description = html.unescape(responder.say("inline_cause_description", lang).text)
        for cause in responder.kb.causes:
            if any(r.id.endswith(f"-{cause.id}") for r in results):
                continue
            title = localize(f"{cause.number}. {cause.title[base]}", lang)
            results.append(InlineResult(f"c-{cause.id}", title, responder.cause_page(cause.id, lang), description))
        return results
