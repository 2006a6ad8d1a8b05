"""The console chat: answers on this machine exactly as the bot does in a private chat, to try it without Telegram."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import select
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from bot.core.live import LIVE_WAIT, user_zone, wants_status
from bot.core.matcher import get_matcher
from bot.core.peak import resolve_tz
from bot.core.replies import Markup, reply_lang_of, resolve_lang
from bot.core.responder import CAUSE_BUTTON, CAUSES_BUTTON, Answer, Button, Responder, TriagePick
from bot.services.status import StatusClient, StatusError

QUIT = {"/quit", "/exit", "/q"}
T = TypeVar("T")


def _lang_from_env() -> str:
    return resolve_lang((os.environ.get("LANG") or os.environ.get("LC_ALL") or "en").split(".")[0])


def _utcnow() -> datetime:
    return datetime.now(UTC)


# Lines of one paste arrive together: a line that follows within this pause belongs to the same message.
PASTE_PAUSE = 0.05


def _show(answer: Answer, out: TextIO) -> None:
    print(answer.text, file=out)
    if answer.buttons:
        labels = "  ".join(f"[{n}] {b.label}" for n, b in enumerate(_flat(answer.buttons), 1))
        print(labels, file=out)
    print(file=out)


def _prompt() -> str:
    try:
        return input("> ") + "\n"
    except EOFError:
        return ""


def _flat(buttons: tuple[tuple[Button, ...], ...]) -> list[Button]:
    return [b for row in buttons for b in row]


def read_message(
    stdin: TextIO, *, gather: bool, pause: float = PASTE_PAUSE, first_line: Callable[[], str] | None = None
) -> str:
    """One message: a line (from `first_line`, e.g. the readline prompt, else `stdin`), and (when `gather`) every
    further line that arrives within `pause` seconds of the last, so a pasted multi-line error is one message.
    "" at end of input."""
    first = first_line() if first_line is not None else stdin.readline()
    if not first or not gather:
        return first
    lines = [first]
    try:
        fd = stdin.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return first
    while select.select([fd], [], [], pause)[0]:
        more = stdin.readline()
        if not more:
            break
        lines.append(more)
    return "".join(lines)


@dataclass
class Session:
    """One console chat: its language and time zone, and the status page client shared by every answer (None:
    no status lines). The client's async calls run on one event loop kept for the whole chat."""

    responder: Responder
    lang: str
    status: StatusClient | None = None
    now: Callable[[], datetime] = _utcnow
    tz_name: str | None = None
    # The buttons of the last answer: typing a number presses one, as tapping does in Telegram.
    buttons: list[Button] = field(default_factory=list)
    _runner: asyncio.Runner | None = field(default=None, repr=False)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(coro)

    def close(self) -> None:
        """Close the status client's connections and the event loop."""
        if self._runner is not None:
            if self.status is not None:
                self._run(self.status.aclose())
            self._runner.close()
            self._runner = None

    def _live(self, answer: Answer, lang: str) -> Answer:
        # The same lines as the bot's, with the same bound on waiting for the status page.
        d = answer.diagnosis
        if not answer.undecided and (d is None or d.cause is None):
            return answer
        wanted = answer.undecided or (d is not None and wants_status(d))
        summary = self._run(self.status.peek(LIVE_WAIT)) if self.status is not None and wanted else None
        return self.responder.with_live(answer, lang, summary, self.now(), user_zone(self.tz_name, lang))

    def _status(self) -> Answer:
        if self.status is None:
            return self.responder.say("status_off", self.lang)
        live = self.responder.live
        try:
            summary = self._run(self.status.get())
        except StatusError as exc:
            return Answer(live.status_unavailable(str(exc), self.status.base_url, self.lang))
        zone = user_zone(self.tz_name, self.lang)
        return Answer(live.status_page(summary, self.status.base_url, self.now(), zone, self.lang))

    def _tz(self, name: str) -> Answer:
        live = self.responder.live
        if not name:
            return Answer(live.tz_answer("tz_show", self.now(), user_zone(self.tz_name, self.lang), self.lang))
        try:
            zone = resolve_tz(name)
        except ValueError:
            return Answer(live.tz_unknown(name, self.lang))
        self.tz_name = zone.key
        return Answer(live.tz_answer("tz_set", self.now(), zone, self.lang))

    def respond(self, line: str) -> Answer | None:
        """The answer to one console message (None for an empty one); a number presses the last answer's button
        of that number; /lang and /tz change the session."""
        answer = self._respond(line)
        if answer is not None:
            self.buttons = _flat(answer.buttons)
        return answer

    def press(self, button: Button) -> Answer | None:
        """What tapping a button does in the bot: a cause's fix, the four causes, or the next triage step."""
        responder, lang, data = self.responder, self.lang, button.data
        pick = TriagePick.parse(data)
        if pick is not None:
            lang = pick.lang or lang  # the language the triage was asked in
            step = responder.triage_pick(pick, lang)
            return self._live(step, lang) if step is not None else None
        if data == CAUSES_BUTTON:
            return responder.causes(lang)
        if data.startswith(CAUSE_BUTTON):
            return responder.cause_page(data[len(CAUSE_BUTTON) :], lang)
        return None

    def _respond(self, line: str) -> Answer | None:
        line = line.strip()
        if not line:
            return None
        responder, lang = self.responder, self.lang
        if line.isdigit() and 1 <= int(line) <= len(self.buttons):
            return self.press(self.buttons[int(line) - 1])
        if not line.startswith("/"):
            reply_lang = reply_lang_of(line) or lang
            answer = responder.diagnosis(line, reply_lang)
            if answer.asks_status and self.status is not None:
                return self._status()
            return self._live(answer, reply_lang)
        command, _, args = line.partition(" ")
        command = command.split("@", 1)[0].lower()
        if command == "/start":
            return responder.start(lang)
        if command == "/help":
            return responder.help(lang)
        if command == "/causes":
            return responder.causes(lang)
        if command == "/fix":
            return self._live(responder.fix(args, lang), lang)
        if command == "/status":
            return self._status()
        if command == "/tz":
            return self._tz(args.strip())
        if command == "/lang":
            new = args.strip().lower()
            if new not in ("zh", "en"):
                return responder.say("lang_usage", lang)
            self.lang = new
            return responder.say("lang_set", new)
        return responder.say("console_unknown_command", lang)


def _status_client(url: str) -> StatusClient | None:
    try:
        return StatusClient(url) if url.strip() else None
    except ValueError as exc:
        print(f"claude-doctor: {exc}; status lines are off", file=sys.stderr)
        return None


def chat(
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    lang: str | None = None,
    *,
    status_url: str | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> int:
    """Run the console chat until end of input or /quit.

    `status_url` is the status page for the live lines; by default STATUS_PAGE_URL when chatting on a terminal,
    and none for piped input, so scripted runs (and tests) never touch the network."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    interactive = stdin.isatty()
    if status_url is None and interactive:
        from bot.settings import DEFAULT_STATUS_PAGE

        status_url = os.environ.get("STATUS_PAGE_URL", DEFAULT_STATUS_PAGE)
    responder = Responder(get_matcher(), Markup.PLAIN)
    session = Session(responder, lang or _lang_from_env(), _status_client(status_url or ""), now)
    print(responder.say("console_hint", session.lang).text, file=out)
    print(file=out)
    start = responder.start(session.lang)
    session.buttons = _flat(start.buttons)
    _show(start, out)
    prompt = _prompt if interactive and stdin is sys.stdin else None
    if prompt is not None:
        # input() gets line editing and history from readline, where the platform has it.
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401
    try:
        while True:
            if interactive and prompt is None:
                print("> ", end="", file=out, flush=True)
            message = read_message(stdin, gather=interactive, first_line=prompt)
            if not message or message.strip().lower() in QUIT:
                return 0
            answer = session.respond(message)
            if answer is not None:
                _show(answer, out)
    finally:
        session.close()


def default_entry() -> int:
    """`claude-doctor` with no arguments: the bot when a token is configured, else the console chat."""
    from bot.settings import load_dotenv_if_present

    load_dotenv_if_present()
    if os.environ.get("TELEGRAM_BOT_TOKEN", "").strip():
        from bot.telegram.app import run_bot

        return run_bot(webhook=False)
    return chat()
