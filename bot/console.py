"""The console chat: answers on this machine exactly as the bot does in a private chat, to try it without Telegram."""

from __future__ import annotations

import asyncio
import contextlib
import io
import select
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from bot.conversation import Conversation, Sender
from bot.core.matcher import get_matcher
from bot.core.replies import Markup
from bot.core.responder import Answer, Button, Responder
from bot.services.memory_store import MemoryStore
from bot.services.status import StatusClient
from bot.settings import Settings, load_settings

QUIT = {"/quit", "/exit", "/q"}
T = TypeVar("T")


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


class Session:
    """One console chat: the conversation (in plain text, with a store in memory and no record kept) and the status
    page client (None: no live lines). Its async calls run on one event loop kept for the whole chat."""

    def __init__(
        self,
        responder: Responder,
        lang: str | None = None,
        status: StatusClient | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.conversation = Conversation(responder, MemoryStore(), status=status, now=now, record=False)
        # The console's reader: one private chat, whose "client language" is the locale (or --lang).
        self.sender = Sender(chat_id=1, user_id=1, private=True, client_lang=lang)
        # The buttons of the last answer: typing a number presses one, as tapping does in Telegram.
        self.buttons: list[Button] = []
        self._runner: asyncio.Runner | None = None

    @property
    def responder(self) -> Responder:
        return self.conversation.responder

    @property
    def lang(self) -> str:
        """The reader's language as their settings say (a pasted text may still decide its own answer's)."""
        return self._run(self.conversation.settings_lang(self.sender))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(coro)

    def close(self) -> None:
        """Close the status client's connections and the event loop."""
        if self._runner is not None:
            if self.conversation.status is not None:
                self._run(self.conversation.status.aclose())
            self._runner.close()
            self._runner = None

    def respond(self, line: str) -> Answer | None:
        """The answer to one console message (None for an empty one); a number presses the last answer's button
        of that number."""
        answer = self._run(self._respond(line))
        if answer is not None:
            self.buttons = _flat(answer.buttons)
        return answer

    def press(self, button: Button) -> Answer | None:
        """What tapping a button does in the bot: a cause's fix, the causes, or the next triage step."""
        return self._run(self.conversation.press(button.data, self.sender, self.sender.user_id, None)).answer

    async def _respond(self, line: str) -> Answer | None:
        line = line.strip()
        conversation, sender = self.conversation, self.sender
        if not line:
            return None
        if line.isdigit() and 1 <= int(line) <= len(self.buttons):
            pressed = await conversation.press(self.buttons[int(line) - 1].data, sender, sender.user_id, None)
            return pressed.answer
        if not line.startswith("/"):
            return await conversation.diagnose(line, sender)
        command, _, args = line.partition(" ")
        run = _COMMANDS.get(command.split("@", 1)[0].lower())
        if run is None:
            return conversation.responder.say("console_unknown_command", await conversation.settings_lang(sender))
        return await run(conversation, sender, args)


async def _anyone() -> bool:
    return True


_COMMANDS: dict[str, Callable[[Conversation, Sender, str], Awaitable[Answer]]] = {
    "/start": lambda c, s, a: c.start(s),
    "/help": lambda c, s, a: c.help(s),
    "/causes": lambda c, s, a: c.causes(s),
    "/fix": lambda c, s, a: c.fix(a, s),
    "/status": lambda c, s, a: c.status_page(s),
    "/tz": lambda c, s, a: c.tz(a, s),
    "/lang": lambda c, s, a: c.set_lang(a, s, _anyone),
    "/privacy": lambda c, s, a: c.privacy(s),
}


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
    settings: Settings | None = None,
) -> int:
    """Run the console chat until end of input or /quit.

    `status_url` is the status page for the live lines; by default the settings' STATUS_PAGE_URL when chatting on a
    terminal, and none for piped input, so scripted runs (and tests) never touch the network."""
    settings = settings or load_settings(need_token=False)
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    interactive = stdin.isatty()
    if status_url is None and interactive:
        status_url = settings.status_page_url
    responder = Responder(get_matcher(directory=settings.knowledge_dir), Markup.PLAIN)
    locale = (settings.locale or "").split(".")[0] or None
    session = Session(responder, lang or locale, _status_client(status_url or ""), now)
    print(responder.say("console_hint", session.lang).text, file=out)
    print(file=out)
    start = session.respond("/start")
    if start is not None:
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


def default_entry(settings: Settings | None = None) -> int:
    """`claude-doctor` with no arguments: the bot when a token is configured, else the console chat."""
    settings = settings or load_settings(need_token=False)
    if settings.token:
        from bot.telegram.app import run_bot

        return run_bot(webhook=False)
    return chat(settings=settings)
