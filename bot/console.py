"""The console chat: answers on this machine exactly as the bot does in a private chat, to try it without Telegram."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from bot.matcher import get_matcher
from bot.normalize import has_cjk
from bot.replies import Markup, resolve_lang
from bot.responder import Answer, Responder

QUIT = {"/quit", "/exit", "/q"}


def _lang_from_env() -> str:
    return resolve_lang((os.environ.get("LANG") or os.environ.get("LC_ALL") or "en").split(".")[0])


def _show(answer: Answer, out: TextIO) -> None:
    print(answer.text, file=out)
    if answer.buttons:
        labels = " | ".join(b.label for row in answer.buttons for b in row)
        print(f"[{labels}]", file=out)
    print(file=out)


def respond(responder: Responder, line: str, lang: str) -> tuple[Answer | None, str]:
    """The answer to one console line, and the language from then on (None for an empty line)."""
    line = line.strip()
    if not line:
        return None, lang
    if not line.startswith("/"):
        reply_lang = "zh" if lang == "en" and has_cjk(line) else lang
        return responder.diagnosis(line, reply_lang), lang
    command, _, args = line.partition(" ")
    command = command.split("@", 1)[0].lower()
    if command == "/start":
        return responder.start(lang), lang
    if command == "/help":
        return responder.help(lang), lang
    if command == "/causes":
        return responder.causes(lang), lang
    if command == "/fix":
        return responder.fix(args, lang), lang
    if command == "/lang":
        new = args.strip().lower()
        if new not in ("zh", "en"):
            return responder.say("lang_usage", lang), lang
        return responder.say("lang_set", new), new
    return responder.say("console_unknown_command", lang), lang


def chat(stdin: TextIO | None = None, out: TextIO | None = None, lang: str | None = None) -> int:
    """Run the console chat until end of input or /quit."""
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    lang = lang or _lang_from_env()
    responder = Responder(get_matcher(), Markup.PLAIN)
    interactive = stdin.isatty()
    print(responder.say("console_hint", lang).text, file=out)
    print(file=out)
    _show(responder.start(lang), out)
    while True:
        if interactive:
            print("> ", end="", file=out, flush=True)
        line = stdin.readline()
        if not line or line.strip().lower() in QUIT:
            return 0
        answer, lang = respond(responder, line, lang)
        if answer is not None:
            _show(answer, out)


def default_entry() -> int:
    """`claude-doctor` with no arguments: the bot when a token is configured, else the console chat."""
    from bot.config import load_dotenv_if_present

    load_dotenv_if_present()
    if os.environ.get("TELEGRAM_BOT_TOKEN", "").strip():
        from bot.app import run_bot

        return run_bot(webhook=False)
    return chat()
