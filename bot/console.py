"""The console chat: answers on this machine exactly as the bot does in a private chat, to try it without Telegram."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from bot.live import LIVE_WAIT, user_zone, wants_status
from bot.matcher import get_matcher
from bot.normalize import has_cjk
from bot.peak import resolve_tz
from bot.replies import Markup, resolve_lang
from bot.responder import Answer, Responder
from bot.status import StatusClient, StatusError

QUIT = {"/quit", "/exit", "/q"}
T = TypeVar("T")


def _lang_from_env() -> str:
    return resolve_lang((os.environ.get("LANG") or os.environ.get("LC_ALL") or "en").split(".")[0])


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _show(answer: Answer, out: TextIO) -> None:
    print(answer.text, file=out)
    if answer.buttons:
        labels = " | ".join(b.label for row in answer.buttons for b in row)
        print(f"[{labels}]", file=out)
    print(file=out)


@dataclass
class Session:
    """One console chat: its language and time zone, and the status page client shared by every answer (None:
    no status lines). The client's async calls run on one event loop kept for the whole chat."""

    responder: Responder
    lang: str
    status: StatusClient | None = None
    now: Callable[[], datetime] = _utcnow
    tz_name: str | None = None
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
        if d is None or d.cause is None:
            return answer
        summary = self._run(self.status.peek(LIVE_WAIT)) if self.status is not None and wants_status(d) else None
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
        """The answer to one console line (None for an empty line); /lang and /tz change the session."""
        line = line.strip()
        if not line:
            return None
        responder, lang = self.responder, self.lang
        if not line.startswith("/"):
            reply_lang = "zh" if lang == "en" and has_cjk(line) else lang
            return self._live(responder.diagnosis(line, reply_lang), reply_lang)
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
        from bot.config import DEFAULT_STATUS_PAGE

        status_url = os.environ.get("STATUS_PAGE_URL", DEFAULT_STATUS_PAGE)
    responder = Responder(get_matcher(), Markup.PLAIN)
    session = Session(responder, lang or _lang_from_env(), _status_client(status_url or ""), now)
    print(responder.say("console_hint", session.lang).text, file=out)
    print(file=out)
    _show(responder.start(session.lang), out)
    try:
        while True:
            if interactive:
                print("> ", end="", file=out, flush=True)
            line = stdin.readline()
            if not line or line.strip().lower() in QUIT:
                return 0
            answer = session.respond(line)
            if answer is not None:
                _show(answer, out)
    finally:
        session.close()


def default_entry() -> int:
    """`claude-doctor` with no arguments: the bot when a token is configured, else the console chat."""
    from bot.config import load_dotenv_if_present

    load_dotenv_if_present()
    if os.environ.get("TELEGRAM_BOT_TOKEN", "").strip():
        from bot.app import run_bot

        return run_bot(webhook=False)
    return chat()
