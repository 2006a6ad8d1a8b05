"""Render diagnoses and cause pages as text, in HTML for Telegram or plain for the terminal, from one code path."""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum

from bot.core.details import Details, until
from bot.core.knowledge import SCRIPT_CONVERSIONS, Entry, KnowledgeBase, default_knowledge
from bot.core.matcher import Diagnosis
from bot.core.normalize import CJK_CHAR, HANGUL, KANA

TELEGRAM_LIMIT = 4096


class Markup(Enum):
    """How a reply is marked up: Telegram HTML, or plain text for the CLI and console."""

    HTML = "html"
    PLAIN = "plain"

    def esc(self, text: str) -> str:
        return html.escape(text, quote=False) if self is Markup.HTML else text

    def bold(self, text: str) -> str:
        return f"<b>{self.esc(text)}</b>" if self is Markup.HTML else text


def resolve_lang(code: str | None, kb: KnowledgeBase | None = None) -> str:
    """The reply language of `kb` (default: `default_knowledge()`) for a Telegram language code or a locale, the
    knowledge base's default language when it has none closer; see KnowledgeBase.resolve_lang."""
    return (kb or default_knowledge()).resolve_lang(code)


def reply_lang_of(text: str, kb: KnowledgeBase | None = None) -> str | None:
    """The language to answer a pasted text in when the text decides it: 'zh-hant' or 'zh' for Chinese
    (Traditional when more of its characters are Traditional-only than Simplified-only), whoever sent it, if `kb`
    (default: `default_knowledge()`) answers in it (else in its base language, else None). None otherwise, and
    for English too: Claude's errors are English for everyone, so an English paste says nothing about its reader,
    whose setting decides."""
    if KANA.search(text) or HANGUL.search(text):
        return None
    hanzi = CJK_CHAR.findall(text)
    if len(hanzi) < 2:
        return None
    chars = "".join(hanzi)
    traditional_only = sum(a != b for a, b in zip(chars, _t2s_chars(chars), strict=False))
    simplified_only = sum(a != b for a, b in zip(chars, _s2t().convert(chars), strict=False))
    found = "zh-hant" if traditional_only > simplified_only else "zh"
    offered = (kb or default_knowledge()).reply_languages
    return next((lang for lang in (found, SCRIPT_CONVERSIONS.get(found)) if lang in offered), None)


def _t2s_chars(chars: str) -> str:
    # Character by character (not Taiwan phrasing), so the count of Traditional-only characters is exact.
    return _t2s_plain().convert(chars)


@functools.cache
def _t2s_plain():  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC("t2s.json")


@functools.cache
def _s2t():  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC("s2twp.json")


def localize(text: str, lang: str) -> str:
    """Turn Simplified Chinese text into Traditional for 'zh-hant' readers; other languages pass through."""
    return _s2t().convert(text) if lang == "zh-hant" else text


def _cause_block(
    kb: KnowledgeBase, cause: Entry, lang: str, markup: Markup, prefix: str = "", variant: str | None = None
) -> list[str]:
    """Heading, why, and the fix steps: those of the `variant` (a kind of the cause with its own advice) if given."""
    base = kb.base_lang(lang)
    assert cause.explanation is not None and cause.fix is not None
    heading = kb.text("cause_heading", base, number=cause.number, title=cause.title[base])
    lines = [markup.bold(f"{prefix}{heading}"), markup.esc(cause.explanation[base]), ""]
    kind = cause.variant(variant)
    if kind is not None:
        lines.append(markup.bold(kb.text("variant_fix_heading", base, title=kind.title[base])))
        lines += _steps(kind.fix[base], markup)
    else:
        lines.append(markup.bold(kb.text("fix_heading", base)))
        lines += _steps(cause.fix[base], markup)
    return lines


def _steps(steps: Sequence[str], markup: Markup) -> list[str]:
    return [f"{i}. {markup.esc(step)}" for i, step in enumerate(steps, 1)]


def render_cause(kb: KnowledgeBase, cause_id: str, lang: str, markup: Markup = Markup.PLAIN) -> str:
    """One cause's page: title, why it happens, numbered fix steps, and each kind's own steps after them."""
    cause = kb.entry(cause_id)
    lines = _cause_block(kb, cause, lang, markup)
    base = kb.base_lang(lang)
    for kind in cause.variants:
        lines += [
            "",
            markup.bold(f"{kind.title[base]}: {kb.text('fix_heading', base)}"),
            *_steps(kind.fix[base], markup),
        ]
    return localize("\n".join(lines), lang)


def detail_lines(
    kb: KnowledgeBase, diagnosis: Diagnosis, details: Details | None, lang: str, markup: Markup, now: datetime
) -> list[str]:
    """What the error itself says that changes the advice: when the limit resets, how far over the limit, which
    model (for capacity), the retries already made, the request id for support. Empty when it says none of it."""
    if details is None:
        return []
    base = kb.base_lang(lang)
    out: list[str] = []
    if details.reset_at is not None and diagnosis.cause == "context":
        left, moment = until(details.reset_at, now), _moment(details.reset_at, now)
        if left is None:
            out.append(kb.text("detail_reset", base, time=moment))
        else:
            out.append(kb.text("detail_reset_in", base, time=moment, hours=left[0], minutes=left[1]))
    if details.over_by is not None and diagnosis.cause == "context":
        out.append(
            kb.text(
                "detail_tokens",
                base,
                tokens=f"{details.tokens:,}",
                limit=f"{details.limit:,}",
                over=f"{details.over_by:,}",
            )
        )
    if details.model is not None and diagnosis.cause == "capacity":
        out.append(kb.text("detail_model", base, model=details.model))
    if details.retry_attempt is not None and details.retry_max is not None:
        out.append(kb.text("detail_retry", base, attempt=details.retry_attempt, attempts=details.retry_max))
    if details.request_id is not None:
        out.append(kb.text("detail_request_id", base, request_id=details.request_id))
    if not out:
        return []
    return ["", markup.bold(kb.text("details_heading", base)), *(f"• {markup.esc(line)}" for line in out)]


def _moment(at: datetime, now: datetime) -> str:
    """A reset time as its zone tells it: "17:00 (Asia/Shanghai)", with the date when it is not today there."""
    zone = getattr(at.tzinfo, "key", None) or "UTC"
    clock = at.strftime("%H:%M") if at.date() == now.astimezone(at.tzinfo).date() else at.strftime("%Y-%m-%d %H:%M")
    return f"{clock} ({zone})"


def render_diagnosis(
    kb: KnowledgeBase,
    diagnosis: Diagnosis,
    lang: str,
    markup: Markup = Markup.PLAIN,
    extra: Sequence[str] = (),
    details: Details | None = None,
    now: datetime | None = None,
) -> str:
    """The reply to a diagnosed text; the error's own details (if given) and then `extra` lines (already marked
    up) go after the main cause."""
    base = kb.base_lang(lang)
    if diagnosis.cause is not None:
        sure = diagnosis.confidence >= kb.thresholds.strict
        prefix = "" if sure else kb.text("likely_prefix", base) + " "
        lines = _cause_block(kb, kb.entry(diagnosis.cause), lang, markup, prefix, diagnosis.variant)
        lines += detail_lines(kb, diagnosis, details, lang, markup, now or datetime.now(UTC))
        lines += list(extra)
        if diagnosis.runner_up is not None:
            lines += ["", markup.bold(kb.text("also_possible", base)), ""]
            lines += _cause_block(kb, kb.entry(diagnosis.runner_up), lang, markup)
    elif diagnosis.known is not None:
        entry = kb.entry(diagnosis.known)
        assert entry.answer is not None
        lines = [markup.bold(entry.title[base]), markup.esc(entry.answer[base])]
        lines += detail_lines(kb, diagnosis, details, lang, markup, now or datetime.now(UTC))
        if diagnosis.runner_up is not None:
            lines += ["", markup.bold(kb.text("also_possible", base)), ""]
            lines += _cause_block(kb, kb.entry(diagnosis.runner_up), lang, markup)
    else:
        lines = [markup.esc(kb.text("no_match", base))]
    return localize("\n".join(lines).strip(), lang)


def render_causes(kb: KnowledgeBase, lang: str, markup: Markup = Markup.PLAIN) -> str:
    """The four causes, one line each, with how to see a fix."""
    base = kb.base_lang(lang)
    lines = [markup.bold(kb.text("causes_intro", base))]
    for cause in kb.causes:
        assert cause.name is not None
        lines.append(markup.esc(kb.text("causes_line", base, number=cause.number, name=cause.title[base])))
    lines += ["", markup.esc(kb.text("causes_footer", base))]
    return localize("\n".join(lines), lang)


def split_message(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split a reply into messages under `limit` characters at line breaks, so no line's markup is cut in two."""
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for para in text.split("\n"):
        while len(para) > limit:
            # A single line this long has no markup of ours spanning a break point; cut it at a space.
            cut = para.rfind(" ", 0, limit) if " " in para[:limit] else limit
            if current:
                parts.append(current)
                current = ""
            parts.append(para[:cut])
            para = para[cut:].lstrip()
        candidate = f"{current}\n{para}" if current else para
        if len(candidate) > limit:
            parts.append(current)
            current = para
        else:
            current = candidate
    if current:
        parts.append(current)
    return [p for p in parts if p.strip()]
