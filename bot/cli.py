"""The `claude-doctor` command: diagnose, eval, check-kb, and (with no arguments) the bot or the console chat."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from bot.knowledge import KnowledgeBase, KnowledgeError, load_knowledge
from bot.matcher import MAX_INPUT_CHARS, Matcher, get_matcher
from bot.normalize import compact, has_cjk
from bot.replies import Markup, render_diagnosis

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_UNUSABLE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="claude-doctor",
        description="Tells why Claude stopped answering and what to do about it.",
    )
    sub = p.add_subparsers(dest="command")
    d = sub.add_parser("diagnose", help="diagnose an error message (TEXT, or - for stdin)")
    d.add_argument("text", nargs="*", help="the error text; '-' reads standard input")
    d.add_argument("--lang", choices=["zh", "zh-hant", "en"], help="reply language (default: the text's)")
    d.add_argument("--json", action="store_true", help="print one JSON object instead of the reply")
    d.add_argument("--batch", action="store_true", help='read JSON Lines {"text": ...} from stdin')
    d.add_argument("--strict", action="store_true", help="use the strict confidence level of group auto-replies")
    e = sub.add_parser("eval", help="measure the matcher on a labelled corpus (.jsonl or research .tsv)")
    e.add_argument("file")
    e.add_argument("--strict", action="store_true", help="evaluate at the strict confidence level")
    e.add_argument("--misses", type=int, default=0, metavar="N", help="also list up to N wrong answers")
    c = sub.add_parser("check-kb", help="validate a knowledge base directory (default: KNOWLEDGE_DIR)")
    c.add_argument("directory", nargs="?")
    r = sub.add_parser("run", help="run the Telegram bot (long polling; --webhook to serve a webhook)")
    r.add_argument("--webhook", action="store_true", help="serve a webhook at WEBHOOK_URL instead of polling")
    sub.add_parser("chat", help="the console chat: answers here as the bot does in a private chat")
    st = sub.add_parser("status", help="Claude's live status from its status page (STATUS_PAGE_URL)")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _load(directory: str | None = None) -> KnowledgeBase:
    return load_knowledge(directory) if directory else get_matcher().kb


class UnusableInput(ValueError):
    """The input has nothing to diagnose; the message says why, in the reply language."""


def check_text(kb: KnowledgeBase, text: str, lang: str) -> None:
    """Raise UnusableInput for empty text or text with no letters, digits or ideographs."""
    if not text.strip():
        raise UnusableInput(kb.text("empty_input", lang))
    if not compact(text.casefold()):
        raise UnusableInput(kb.text("no_text_in_input", lang))


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        print(
            "claude-doctor: standard input is not valid UTF-8; undecodable bytes were replaced",
            file=sys.stderr,
        )
        return data.decode("utf-8", errors="replace")


def _diagnose_one(matcher: Matcher, text: str, args: argparse.Namespace, out: TextIO) -> int:
    kb = matcher.kb
    lang = args.lang or ("zh" if has_cjk(text) else "en")
    try:
        check_text(kb, text, lang)
    except UnusableInput as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}, ensure_ascii=False), file=out)
        else:
            print(f"claude-doctor: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if len(text) > MAX_INPUT_CHARS:
        print(f"claude-doctor: {kb.text('input_truncated', 'en', limit=MAX_INPUT_CHARS)}", file=sys.stderr)
    threshold = kb.thresholds.strict if args.strict else kb.thresholds.asked
    result = matcher.diagnose(text, threshold=threshold)
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False), file=out)
    else:
        print(render_diagnosis(kb, result, lang, Markup.PLAIN), file=out)
    return EXIT_OK


def _batch(matcher: Matcher, args: argparse.Namespace, out: TextIO) -> int:
    threshold = matcher.kb.thresholds.strict if args.strict else matcher.kb.thresholds.asked
    for n, raw in enumerate(sys.stdin.buffer, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            print(json.dumps({"error": f"line {n}: not valid UTF-8"}), file=out)
            continue
        if not line.strip():
            print(json.dumps({"error": f"line {n}: empty line"}), file=out)
            continue
        try:
            obj = json.loads(line)
            text = obj["text"]
            if not isinstance(text, str):
                raise TypeError("'text' must be a string")
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            print(json.dumps({"error": f'line {n}: expected {{"text": "..."}}: {reason}'}), file=out)
            continue
        if not compact(text.casefold()):
            print(json.dumps({"error": f"line {n}: no text to diagnose"}), file=out)
            continue
        print(json.dumps(matcher.diagnose(text, threshold=threshold).to_json(), ensure_ascii=False), file=out)
        out.flush()
    return EXIT_OK


def cmd_diagnose(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`claude-doctor diagnose`."""
    out = out or sys.stdout
    matcher = get_matcher()
    if args.batch:
        return _batch(matcher, args, out)
    text = _read_stdin() if args.text == ["-"] else " ".join(args.text)
    if not args.text:
        print("claude-doctor: give the error text, or '-' to read it from standard input", file=sys.stderr)
        return EXIT_UNUSABLE
    return _diagnose_one(matcher, text, args, out)


def cmd_eval(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`claude-doctor eval FILE`."""
    out = out or sys.stdout
    from bot.evaluate import evaluate, load_cases

    try:
        cases = load_cases(args.file)
    except (OSError, ValueError) as exc:
        print(f"claude-doctor: cannot read the corpus: {exc}", file=sys.stderr)
        return EXIT_FAIL
    matcher = get_matcher()
    threshold = matcher.kb.thresholds.strict if args.strict else None
    print(evaluate(matcher, cases, threshold).format(show_misses=args.misses), file=out)
    return EXIT_OK


def cmd_check_kb(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`claude-doctor check-kb [DIR]`: exit 0 when valid, 1 with one line per problem otherwise."""
    out = out or sys.stdout
    try:
        kb = load_knowledge(args.directory)
    except KnowledgeError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"claude-doctor: the knowledge base has {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_FAIL
    print(
        f"knowledge base OK: {kb.directory}: {len(kb.causes)} causes, {len(kb.known)} known non-causes, "
        f"{kb.signature_count} signatures, {len(kb.strings)} strings",
        file=out,
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """`claude-doctor run [--webhook]`."""
    from bot.app import run_bot

    return run_bot(webhook=args.webhook)


def cmd_chat(args: argparse.Namespace) -> int:
    """`claude-doctor chat`."""
    from bot.console import chat

    return chat()


def cmd_status(args: argparse.Namespace) -> int:
    """`claude-doctor status [--json]`: exit 1 with a one-line reason when the page can't be read."""
    import os

    from bot.config import DEFAULT_STATUS_PAGE, load_dotenv_if_present
    from bot.status import status_command

    load_dotenv_if_present()
    return status_command(os.environ.get("STATUS_PAGE_URL", DEFAULT_STATUS_PAGE).strip(), args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    commands = {
        "diagnose": cmd_diagnose,
        "eval": cmd_eval,
        "check-kb": cmd_check_kb,
        "run": cmd_run,
        "chat": cmd_chat,
        "status": cmd_status,
    }
    try:
        if args.command is None:
            from bot.console import default_entry

            return default_entry()
        return commands[args.command](args)
    except KnowledgeError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(
            "claude-doctor: the knowledge base is broken; fix it or point KNOWLEDGE_DIR elsewhere",
            file=sys.stderr,
        )
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
