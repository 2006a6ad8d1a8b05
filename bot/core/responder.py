"""What the bot says to a message, independent of Telegram: the console chat and the handlers both call this."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.core.details import Details, extract
from bot.core.knowledge import KnowledgeBase
from bot.core.live import Live
from bot.core.matcher import Diagnosis, Matcher
from bot.core.normalize import clean, compact
from bot.core.replies import Markup, localize, render_cause, render_causes, render_diagnosis
from bot.core.statuspage import StatusSummary

# Button payloads (Telegram allows 64 bytes of callback data).
CAUSE_BUTTON = "fix:"
CAUSES_BUTTON = "causes"
# A triage answer: "tri:<question>:<option>[:<asker's user id>]". The path is in the button itself, so a triage
# survives a restart with nothing stored; the asker's id keeps a group's buttons for the person who asked.
TRIAGE_BUTTON = "tri:"
_LANG_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


@dataclass(frozen=True)
class TriagePick:
    """A pressed triage button: which question, which answer, whose triage it is (None: anyone's) and the language
    it was asked in, so every step answers in the language of the first question."""

    question: str
    option: int
    asker: int | None = None
    lang: str | None = None

    @classmethod
    def parse(cls, data: str, kb: KnowledgeBase | None = None) -> TriagePick | None:
        """The pick a button's data encodes ("tri:<question>:<option>:<asker or ->:<lang>", older buttons without
        the last fields), or None if it is not a well-formed triage button or (given `kb`) names a language `kb`
        does not answer in. Without `kb` any language code passes; `Responder.triage_pick` refuses one it lacks."""
        if not data.startswith(TRIAGE_BUTTON):
            return None
        parts = data[len(TRIAGE_BUTTON) :].split(":")
        if not 2 <= len(parts) <= 4 or not parts[1].isdigit():
            return None
        asker = parts[2] if len(parts) > 2 else "-"
        if asker != "-" and not asker.lstrip("-").isdigit():
            return None
        lang = parts[3] if len(parts) > 3 else None
        if lang is not None and not (_LANG_CODE.match(lang) if kb is None else lang in kb.reply_languages):
            return None
        return cls(parts[0], int(parts[1]), None if asker == "-" else int(asker), lang)

    def data(self) -> str:
        asker = "-" if self.asker is None else str(self.asker)
        lang = f":{self.lang}" if self.lang else ""
        return f"{TRIAGE_BUTTON}{self.question}:{self.option}:{asker}{lang}"


@dataclass(frozen=True)
class Button:
    """An inline button: its label and the callback data it sends."""

    label: str
    data: str


@dataclass(frozen=True)
class Answer:
    """A reply: marked-up text, rows of buttons, and the diagnosis behind it if there was one."""

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    diagnosis: Diagnosis | None = field(default=None, compare=False)
    details: Details | None = field(default=None, compare=False)
    # The diagnosed text, so the details can be read again in the reader's time zone once it is known.
    source: str = field(default="", compare=False, repr=False)
    # A question whether Claude is down now: the front end answers it with the live status page when it has one.
    asks_status: bool = field(default=False, compare=False)
    # A triage that ended without a cause: the live lines (status page, peak hours) help tell the causes apart.
    undecided: bool = field(default=False, compare=False)


class Responder:
    """Turns commands and pasted errors into answers in one markup (HTML for Telegram, plain for the console)."""

    def __init__(self, matcher: Matcher, markup: Markup) -> None:
        self.matcher = matcher
        self.kb: KnowledgeBase = matcher.kb
        self.markup = markup
        self.live = Live(self.kb, markup)

    def _text(self, key: str, lang: str, **values: object) -> str:
        return localize(self.markup.esc(self.kb.text(key, lang, **values)), lang)

    def _help(self, lang: str) -> str:
        # The live commands' line lives in status.yaml; a knowledge base without it just doesn't mention them.
        extra = f"\n{self._text('help_live', lang)}" if "help_live" in self.kb.strings else ""
        return self._text("help", lang, langs=", ".join(self.kb.reply_languages)) + extra

    def start(self, lang: str) -> Answer:
        """/start: what the bot does and how to use it."""
        return Answer(f"{self._text('start', lang)}\n\n{self._help(lang)}", self.cause_buttons(lang))

    def help(self, lang: str) -> Answer:
        """/help."""
        return Answer(self._help(lang), self.cause_buttons(lang))

    def causes(self, lang: str) -> Answer:
        """/causes: the causes, one line each, with a button per cause."""
        return Answer(render_causes(self.kb, lang, self.markup), self.cause_buttons(lang))

    def cause_buttons(self, lang: str, exclude: str | None = None) -> tuple[tuple[Button, ...], ...]:
        """Buttons opening each cause's fix (all but `exclude`), as many to a row as the knowledge base says."""
        base = self.kb.base_lang(lang)
        row = tuple(
            Button(localize(f"{c.number}. {c.name[base]}", lang), CAUSE_BUTTON + c.id)  # type: ignore[index]
            for c in self.kb.causes
            if c.id != exclude
        )
        size = self.kb.cause_buttons_per_row
        return tuple(row[i : i + size] for i in range(0, len(row), size)) or ((),)

    def cause_page(self, cause_id: str, lang: str) -> Answer:
        """One cause's explanation and fix, with buttons to the other causes."""
        return Answer(render_cause(self.kb, cause_id, lang, self.markup), self.cause_buttons(lang, exclude=cause_id))

    def find_cause(self, name: str) -> str | None:
        """The cause a /fix argument names: its number, id, name (in any language) or an alias."""
        key = clean(name)
        if key.isdigit():
            cause = self.kb.cause_by_number(int(key))
            return cause.id if cause else None
        packed = compact(key)
        for cause in self.kb.causes:
            names = {cause.id, *cause.aliases, *(clean(v) for v in (cause.name or {}).values())}
            if key in names or packed in {compact(n) for n in names}:
                return cause.id
        return None

    def fix(self, args: str, lang: str) -> Answer:
        """/fix [N | name | text]: a cause's fix, a diagnosis of the text, or a request for the error."""
        args = args.strip()
        if not args:
            return Answer(self._text("ask_for_error", lang))
        cause_id = self.find_cause(args)
        if cause_id is not None:
            return self.cause_page(cause_id, lang)
        if len(args) <= 12 and len(args.split()) == 1 and not self.matcher.diagnose(args).matched:
            answer = self._text("unknown_cause", lang, name=args, count=len(self.kb.causes))
            return Answer(answer, self.cause_buttons(lang))
        return self.diagnosis(args, lang)

    def diagnosis(
        self,
        text: str,
        lang: str,
        *,
        strict: bool = False,
        extra: tuple[str, ...] = (),
        image: bool = False,
        now: datetime | None = None,
        tz: ZoneInfo | None = None,
        asker: int | None = None,
    ) -> Answer:
        """The answer to a pasted error (or one read from a screenshot, `image`), with what the error itself says
        (reset time in `tz`, tokens, request id). When nothing matches: a welcome for a greeting, the triage
        questions (for `asker` only, in a group) for a problem told in words, else a kind 'not recognised'."""
        if not compact(text.casefold()):
            return Answer(self._text("no_text_in_input" if text.strip() else "empty_input", lang))
        thresholds = self.kb.thresholds
        d = self.matcher.diagnose(text, threshold=thresholds.strict if strict else thresholds.asked, image=image)
        asks_status = d.cause in (None, "service") and not strict and not image and self.matcher.asks_status(text)
        if asks_status and not d.matched:
            # "Is Claude working?": about an outage even with no word of one; the front end shows the live status.
            d = Diagnosis(cause="service", confidence=thresholds.asked, evidence="a question about Claude's status")
        if not d.matched and not strict and not image:
            # Nothing recognised in a message somebody wrote to us: a greeting gets a welcome, a problem told in the
            # person's own words a few questions, rather than "not recognised". (A screenshot's text is not theirs.)
            if self.matcher.is_greeting(text):
                return Answer(self._text("welcome", lang), self.cause_buttons(lang))
            if self.kb.triage is not None and self.matcher.describes_trouble(text):
                return self.triage(lang, asker=asker)
        now = now or datetime.now(UTC)
        details = extract(text, now=now, tz=tz) if d.matched else None
        body = render_diagnosis(self.kb, d, lang, self.markup, extra=extra, details=details, now=now)
        exclude = d.cause if d.cause is not None and d.runner_up is None else None
        return Answer(body, self.cause_buttons(lang, exclude=exclude), d, details, text, asks_status)

    def with_live(
        self, answer: Answer, lang: str, summary: StatusSummary | None, now: datetime, tz: ZoneInfo
    ) -> Answer:
        """The answer with the live lines (status, peak hours) after the main cause's fix, if its cause has any."""
        d = answer.diagnosis
        if answer.undecided:
            # What the bot knows now decides between the causes: an open incident, or peak hours.
            live = [self.live.status_line(summary, now, tz, lang)] if summary is not None else []
            live += [line for line in (self.live.peak_line(now, tz, lang),) if line is not None]
            text = "\n\n".join((answer.text, *live)) if live else answer.text
            return Answer(text, answer.buttons, undecided=True)
        if d is None or d.cause is None:
            return answer
        lines = self.live.diagnosis_lines(d, summary, now, tz, lang)
        if not lines:
            return answer
        details = extract(answer.source, now=now, tz=tz) if answer.details is not None else None
        body = render_diagnosis(self.kb, d, lang, self.markup, extra=("", *lines), details=details, now=now)
        return Answer(body, answer.buttons, d, details, answer.source)

    def triage(self, lang: str, question: str | None = None, asker: int | None = None) -> Answer:
        """A triage question with its answers as buttons, one per row (the first question unless `question`)."""
        triage = self.kb.triage
        assert triage is not None
        q = triage.questions[question or triage.start]
        base = self.kb.base_lang(lang)
        rows = tuple(
            (Button(localize(o.label[base], lang), TriagePick(q.id, n, asker, lang).data()),)
            for n, o in enumerate(q.options)
        )
        return Answer(localize(self.markup.esc(q.text[base]), lang), rows)

    def triage_pick(self, pick: TriagePick, lang: str) -> Answer | None:
        """Where a triage answer leads: the next question, a cause's answer (with its kind's advice), or how to
        tell the causes apart. None if the button names a question, an answer or a language this knowledge base
        does not have."""
        if pick.lang is not None and pick.lang not in self.kb.reply_languages:
            return None
        lang = pick.lang or lang
        triage = self.kb.triage
        q = triage.questions.get(pick.question) if triage is not None else None
        if q is None or not 0 <= pick.option < len(q.options):
            return None
        option = q.options[pick.option]
        if option.next is not None:
            return self.triage(lang, option.next, pick.asker)
        if option.cause is None:
            return Answer(self._text("triage_apart", lang), self.cause_buttons(lang), undecided=True)
        d = Diagnosis(cause=option.cause, confidence=1.0, evidence="guided triage", variant=option.variant)
        body = render_diagnosis(self.kb, d, lang, self.markup)
        return Answer(body, self.cause_buttons(lang, exclude=option.cause), d)

    def media(self, lang: str) -> Answer:
        """A photo, sticker, voice note or file without text."""
        return Answer(self._text("media_not_supported", lang))

    def say(self, key: str, lang: str, **values: object) -> Answer:
        """A plain UI string as an answer."""
        return Answer(self._text(key, lang, **values))
