"""The `claude-doctor` command: diagnose, eval, check-kb, and (with no arguments) the bot or the console chat."""

from __future__ import annotations

import argparse
import asyncio
import json
import stat
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.conversation import Conversation, ImageText, Sender
from bot.core.details import extract
from bot.core.knowledge import KnowledgeBase, KnowledgeError, knowledge_version, load_knowledge
from bot.core.matcher import MAX_INPUT_CHARS, Matcher, get_matcher
from bot.core.normalize import compact
from bot.core.replies import Markup, reply_lang_of
from bot.core.responder import Responder
from bot.core.statuspage import StatusSummary
from bot.services.memory_store import MemoryStore
from bot.settings import ConfigError, Settings, load_settings

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_UNUSABLE = 2

# Said when the OCR extra is not installed (the same words in every language: it is an operator's problem).
NO_OCR = "screenshots are not enabled here (pip install 'claude-doctor[ocr]'); paste the text instead"
# How much of the text read from an image goes into --json output.
JSON_TEXT_CHARS = 500


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="claude-doctor",
        description="Tells why Claude stopped answering and what to do about it.",
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command")
    d = sub.add_parser("diagnose", help="diagnose an error message (TEXT, or - for stdin)")
    d.add_argument("text", nargs="*", help="the error text; '-' reads standard input")
    d.add_argument(
        "--image",
        metavar="PATH",
        help="read the error from a screenshot (PNG, JPEG or WebP; needs the ocr extra)",
    )
    d.add_argument("--lang", help="reply language, one the knowledge base has (default: the text's, else the locale's)")
    d.add_argument("--json", action="store_true", help="print one JSON object instead of the reply")
    d.add_argument("--batch", action="store_true", help='read JSON Lines {"text": ...} or {"image": "PATH"} from stdin')
    d.add_argument("--strict", action="store_true", help="use the strict confidence level of group auto-replies")
    e = sub.add_parser("eval", help="measure the matcher on a labelled corpus (.jsonl or research .tsv)")
    e.add_argument("file")
    e.add_argument("--strict", action="store_true", help="detail (confusion, misses) at the strict level")
    e.add_argument("--misses", type=int, default=0, metavar="N", help="also list up to N wrong answers")
    e.add_argument(
        "--unseen-against",
        nargs="+",
        default=(),
        metavar="CORPUS",
        help="leave out cases whose text also occurs in these corpora (what a held-out set shares with tuned ones)",
    )
    c = sub.add_parser("check-kb", help="validate a knowledge base directory (default: KNOWLEDGE_DIR)")
    c.add_argument("directory", nargs="?")
    r = sub.add_parser("run", help="run the Telegram bot (long polling; --webhook to serve a webhook)")
    r.add_argument("--webhook", action="store_true", help="serve a webhook at WEBHOOK_URL instead of polling")
    sub.add_parser("chat", help="the console chat: answers here as the bot does in a private chat")
    data_dir = None  # the settings' DATA_DIR, filled in by main()
    m = sub.add_parser("misses", help="the texts the bot did not recognise or got wrong, grouped by similarity")
    m.add_argument("--data-dir", default=data_dir, help="the bot's DATA_DIR (default: $DATA_DIR or ./data)")
    m.add_argument("--export", metavar="FILE.jsonl", help="write them in the corpus format, to label and eval")
    st = sub.add_parser("stats", help="what the bot answered: causes, languages, feedback, misses")
    st.add_argument("--data-dir", default=data_dir, help="the bot's DATA_DIR (default: $DATA_DIR or ./data)")
    st.add_argument("--days", type=int, default=7, help="how many days back (default 7)")
    st = sub.add_parser("status", help="Claude's live status from its status page (STATUS_PAGE_URL)")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    sub.add_parser("health", help="exit 0 if the bot running on DATA_DIR is healthy (Docker's HEALTHCHECK)")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    """The settings main() read once (a test calling a command directly gets them read now)."""
    settings = getattr(args, "settings", None)
    return settings if settings is not None else load_settings(need_token=False)


def _matcher(args: argparse.Namespace) -> Matcher:
    return get_matcher(directory=_settings(args).knowledge_dir)


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


class ImageProblem(Exception):
    """An image that gave no text to diagnose; str() is the one-line message, ``reason`` a short code."""

    def __init__(self, message: str, reason: str, exit_code: int = EXIT_UNUSABLE) -> None:
        super().__init__(" ".join(message.split()))  # one line, whatever the exception text held
        self.reason = reason
        self.exit_code = exit_code


# Problems that are the same for every image: the OCR extra is missing, or its engine does not load.
_OCR_DOWN = ("not_enabled", "ocr_unavailable")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def read_image(kb: KnowledgeBase, path: str, lang: str) -> str:
    """The text of a screenshot (bot.services.ocr.read_file: one engine per process, loaded on the first image).

    Raises ImageProblem for everything that leaves no text: no OCR extra, a missing or unreadable file,
    an image bot.services.ocr rejects, an image without readable text, or an OCR engine that fails.
    """
    from bot.services import ocr

    if not ocr.ocr_available():
        raise ImageProblem(NO_OCR, "not_enabled")
    try:
        info = Path(path).stat()
    except OSError as exc:
        raise ImageProblem(f"cannot read {path}: {exc.strerror or _one_line(exc)}", "unreadable") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ImageProblem(f"cannot read {path}: not a regular file", "unreadable")
    if info.st_size > ocr.MAX_BYTES:
        # Refused before read_file loads the whole file into memory.
        message = kb.text("image_too_large", lang, limit=ocr.MAX_BYTES // 2**20)
        raise ImageProblem(f"{path}: {message}", "too_large")
    try:
        text = ocr.read_file(path)
    except ocr.ImageRejected as exc:
        key = f"image_{exc.reason}"
        message = kb.text(key, lang, limit=ocr.MAX_BYTES // 2**20) if key in kb.strings else exc.reason
        raise ImageProblem(f"{path}: {message}", exc.reason) from exc
    except OSError as exc:
        raise ImageProblem(f"cannot read {path}: {exc.strerror or _one_line(exc)}", "unreadable") from exc
    except ocr.OcrUnavailable as exc:
        if not ocr.ocr_available():
            raise ImageProblem(NO_OCR, "not_enabled") from exc
        raise ImageProblem(f"OCR does not work here: {_one_line(exc)}", "ocr_unavailable", EXIT_FAIL) from exc
    except Exception as exc:  # an engine error on one image: a message, never a traceback
        raise ImageProblem(
            f"OCR failed on {path}: {type(exc).__name__}: {_one_line(exc)}", "ocr_failed", EXIT_FAIL
        ) from exc
    if not compact(text.casefold()):
        raise ImageProblem(f"{path}: {kb.text('image_no_text', lang)}", "no_text")
    return text


def _image_json(obj: dict[str, object], text: str) -> dict[str, object]:
    return {**obj, "source": "image", "text": text[:JSON_TEXT_CHARS]}


def _diagnose_one(
    matcher: Matcher, text: str, args: argparse.Namespace, out: TextIO, *, from_image: bool = False
) -> int:
    kb = matcher.kb
    lang = args.lang or reply_lang_of(text, kb) or kb.default_language
    try:
        check_text(kb, text, lang)
    except UnusableInput as exc:
        if args.json:
            print(json.dumps({"error": str(exc)}, ensure_ascii=False), file=out)
        else:
            print(f"claude-doctor: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if len(text) > MAX_INPUT_CHARS:
        print(f"claude-doctor: {kb.text('input_truncated', 'en', half=MAX_INPUT_CHARS // 2)}", file=sys.stderr)
    if args.json:
        threshold = kb.thresholds.strict if args.strict else kb.thresholds.asked
        result = matcher.diagnose(text, threshold=threshold, image=from_image)
        obj = {**result.to_json(), "details": extract(text, now=datetime.now(UTC)).to_json()}
        print(json.dumps(_image_json(obj, text) if from_image else obj, ensure_ascii=False), file=out)
        return EXIT_OK
    print(reply(matcher, text, args, from_image=from_image), file=out)
    return EXIT_OK


def reply(matcher: Matcher, text: str, args: argparse.Namespace, *, from_image: bool = False) -> str:
    """The answer the bot would give in a private chat, in plain text (no status page: the CLI stays offline), with
    a triage's choices listed since nobody can press them here."""
    settings = _settings(args)
    conversation = Conversation(Responder(matcher, Markup.PLAIN), MemoryStore(), record=False)
    sender = Sender(chat_id=0, client_lang=(settings.locale or "").split(".")[0] or None)
    if from_image:
        answer = asyncio.run(conversation.image(ImageText(text=text), "", sender, lang=args.lang))
    else:
        answer = asyncio.run(conversation.diagnose(text, sender, lang=args.lang, strict=args.strict))
    assert answer is not None  # an asked image always gets an answer
    choices = [f"- {b.label}" for row in answer.buttons for b in row] if answer.diagnosis is None else []
    return "\n".join([answer.text, *choices])


def _diagnose_image(matcher: Matcher, args: argparse.Namespace, out: TextIO) -> int:
    try:
        text = read_image(matcher.kb, args.image, args.lang or "en")
    except ImageProblem as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "reason": exc.reason}, ensure_ascii=False), file=out)
        else:
            print(f"claude-doctor: {exc}", file=sys.stderr)
        return exc.exit_code
    return _diagnose_one(matcher, text, args, out, from_image=True)


def _batch_item(line: str) -> tuple[str, str]:
    """("text", TEXT) or ("image", PATH) from one JSON line; ValueError says what is wrong with it."""
    obj = json.loads(line)  # json.JSONDecodeError is a ValueError
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    keys = [key for key in ("text", "image") if key in obj]
    if len(keys) != 1:
        raise ValueError("give 'text' or 'image', not both" if keys else "missing key 'text'")
    value = obj[keys[0]]
    if not isinstance(value, str):
        raise ValueError(f"'{keys[0]}' must be a string")
    return keys[0], value


def _batch(matcher: Matcher, args: argparse.Namespace, out: TextIO) -> int:
    kb = matcher.kb
    threshold = kb.thresholds.strict if args.strict else kb.thresholds.asked
    # Once OCR turns out not to work at all, the remaining image lines get the same answer without retrying.
    ocr_down: ImageProblem | None = None
    lines = answered = 0
    for n, raw in enumerate(sys.stdin.buffer, 1):
        lines = n
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            print(json.dumps({"error": f"line {n}: not valid UTF-8"}), file=out)
            continue
        if not line.strip():
            print(json.dumps({"error": f"line {n}: empty line"}), file=out)
            continue
        try:
            key, text = _batch_item(line)
        except ValueError as exc:
            print(
                json.dumps({"error": f'line {n}: expected {{"text": "..."}} or {{"image": "PATH"}}: {exc}'}), file=out
            )
            continue
        if key == "image":
            try:
                if ocr_down is not None:
                    raise ocr_down
                text = read_image(kb, text, args.lang or "en")
            except ImageProblem as exc:
                if exc.reason in _OCR_DOWN:
                    ocr_down = exc
                print(json.dumps({"error": f"line {n}: {exc}", "reason": exc.reason}, ensure_ascii=False), file=out)
                out.flush()
                continue
        elif not compact(text.casefold()):
            print(json.dumps({"error": f"line {n}: no text to diagnose"}), file=out)
            continue
        result = matcher.diagnose(text, threshold=threshold, image=key == "image").to_json()
        print(json.dumps(_image_json(result, text) if key == "image" else result, ensure_ascii=False), file=out)
        out.flush()
        answered += 1
    if lines and not answered:
        # A script must be able to tell that nothing in its input could be diagnosed.
        print(f"claude-doctor: none of the {lines} lines could be diagnosed", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def cmd_diagnose(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`claude-doctor diagnose`."""
    out = out or sys.stdout
    image = getattr(args, "image", None)
    if image is not None and (args.batch or args.text):
        print("claude-doctor: --image reads one screenshot; give no TEXT and no --batch with it", file=sys.stderr)
        return EXIT_UNUSABLE
    matcher = _matcher(args)
    if args.lang is not None and args.lang not in matcher.kb.reply_languages:
        known = ", ".join(matcher.kb.reply_languages)
        print(f"claude-doctor: --lang must be one of the knowledge base's languages: {known}", file=sys.stderr)
        return EXIT_UNUSABLE
    if args.batch:
        return _batch(matcher, args, out)
    if image is not None:
        return _diagnose_image(matcher, args, out)
    text = _read_stdin() if args.text == ["-"] else " ".join(args.text)
    if not args.text:
        print("claude-doctor: give the error text, or '-' to read it from standard input", file=sys.stderr)
        return EXIT_UNUSABLE
    return _diagnose_one(matcher, text, args, out)


def _version() -> str:
    """The program's version and the knowledge base's content hash (which knowledge answers)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        program = version("claude-doctor")
    except PackageNotFoundError:
        program = "unknown"
    try:
        knowledge = knowledge_version(load_settings(need_token=False).knowledge_dir)
    except ConfigError:
        knowledge = knowledge_version()
    except OSError as exc:
        knowledge = f"unreadable ({exc.strerror or exc})"
    return f"claude-doctor {program}, knowledge base {knowledge}"


def cmd_misses(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`claude-doctor misses`."""
    from bot.operator_cli import cmd_misses as run

    return run(args, _matcher(args), out)


def cmd_operator_stats(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`claude-doctor stats`."""
    from bot.operator_cli import cmd_stats as run

    return run(args, _matcher(args), out)


def cmd_eval(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`claude-doctor eval FILE`."""
    out = out or sys.stdout
    from bot.core.evaluate import evaluate_levels, load_cases

    try:
        kb = _matcher(args).kb
        cases = load_cases(args.file, kb)
        seen = {_same_text(c.text) for path in args.unseen_against for c in load_cases(path, kb)}
    except (OSError, ValueError) as exc:
        print(f"claude-doctor: cannot read the corpus: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if seen:
        kept = [c for c in cases if _same_text(c.text) not in seen]
        print(f"left out {len(cases) - len(kept)} case(s) whose text occurs in the other corpora", file=out)
        cases = kept
    levels = evaluate_levels(_matcher(args), cases)
    print(levels.format(show_misses=args.misses, strict_detail=args.strict), file=out)
    return EXIT_OK


def _same_text(text: str) -> str:
    return text.strip().casefold()


def cmd_check_kb(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """`claude-doctor check-kb [DIR]`: exit 0 when valid, 1 with one line per problem otherwise."""
    out = out or sys.stdout
    try:
        kb = load_knowledge(args.directory or _settings(args).knowledge_dir)
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
    from bot.telegram.app import run_bot

    return run_bot(webhook=args.webhook)


def cmd_chat(args: argparse.Namespace) -> int:
    """`claude-doctor chat`."""
    from bot.console import chat

    return chat(settings=_settings(args))


def cmd_status(args: argparse.Namespace) -> int:
    """`claude-doctor status [--json]`: exit 1 with a one-line reason when the page can't be read."""

    from bot.services.status import status_command

    settings = _settings(args)
    live = Responder(_matcher(args), Markup.PLAIN).live
    kb = live.kb
    lang = kb.resolve_lang((settings.locale or "").split(".")[0] or None)
    zone = live.user_zone(None, lang)

    def render(summary: StatusSummary) -> str:
        return live.status_page(summary, settings.status_page_url, datetime.now(UTC), zone, lang)

    return status_command(settings.status_page_url, args.json, render=render)


def cmd_health(args: argparse.Namespace) -> int:
    """`claude-doctor health`: the running bot touches DATA_DIR/heartbeat while it polls or serves; a stale or
    missing heartbeat is one line and exit 1."""
    import time

    from bot.telegram.runner import HEARTBEAT_FILE, HEARTBEAT_STALE

    path = _settings(args).data_dir / HEARTBEAT_FILE
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        print(f"claude-doctor: unhealthy: no heartbeat at {path} (is the bot running?)", file=sys.stderr)
        return EXIT_FAIL
    if age > HEARTBEAT_STALE:
        print(f"claude-doctor: unhealthy: last heartbeat {age:.0f} s ago", file=sys.stderr)
        return EXIT_FAIL
    print(f"healthy: heartbeat {age:.0f} s ago")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    try:
        # `run` reads them itself, the token first of all.
        args.settings = None if args.command == "run" else load_settings(need_token=False)
    except ConfigError as exc:
        print(f"claude-doctor: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    if getattr(args, "data_dir", False) is None and args.settings is not None:
        args.data_dir = str(args.settings.data_dir)
    commands = {
        "diagnose": cmd_diagnose,
        "eval": cmd_eval,
        "check-kb": cmd_check_kb,
        "run": cmd_run,
        "chat": cmd_chat,
        "status": cmd_status,
        "health": cmd_health,
        "misses": cmd_misses,
        "stats": cmd_operator_stats,
    }
    try:
        if args.command is None:
            from bot.console import default_entry

            return default_entry(args.settings)
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
