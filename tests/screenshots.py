"""Deterministic synthetic screenshots of Claude error messages, for OCR tests and benchmarks.

Each style draws the error inside the UI a user would actually photograph (chat bubbles, sidebar,
buttons, status bar), so OCR has to find the error among ordinary text.  Run
``python -m tests.screenshots OUTDIR`` to write the benchmark corpus as files and look at it.
"""

from __future__ import annotations

import functools
import io
import random
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

STYLES = ("web_light", "web_dark", "terminal", "phone", "desktop", "banner")

# Real error strings users have sent; ground truth for the OCR measurements.
ERRORS_EN = (
    "Due to unexpected capacity constraints, Claude is unable to respond to your message. Please try again soon.",
    "Claude is currently experiencing a temporary service disruption. We're working on it, please check back soon.",
    "Claude's response was interrupted. This can be caused by network problems or exceeding the maximum "
    "conversation length.",
    'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    "Your message will exceed the length limit for this chat. Try shortening your message or starting a new "
    "conversation",
    "Request timed out. Check your internet connection and proxy settings",
    "You've hit your limit · resets 11pm (Europe/Warsaw)",
)
ERRORS_ZH = (
    "我们无法连接到Claude。请检查你的网络连接并重试。",
    "你已达到消息限制。它会在 18:00 重置，或者你也可以升级以获得更高的限制。",
    "请稍后重试。关注 status.anthropic.com 获取更新。",
)
ERRORS = ERRORS_EN + ERRORS_ZH

_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
# A token is one ideograph (CJK wraps between any two), a run of other non-space text, or a space run.
_TOKENS = re.compile(
    r"[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]|[^\s\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]+|\s+"
)
# Chinese line breaking never starts a line with closing punctuation.
_NO_LINE_START = set("，。、；：？！）」』》,.;:?!)")

Color = tuple[int, int, int]


def has_cjk(text: str) -> bool:
    """Whether the text contains CJK characters (selects the Chinese UI)."""
    return _CJK.search(text) is not None


# --------------------------------------------------------------------------- fonts

_FONT_FACES = {
    # kind: (family, style, required)
    "sans": ("Noto Sans CJK SC", "Regular", True),
    "bold": ("Noto Sans CJK SC", "Bold", False),
    "serif": ("Noto Serif CJK SC", "Regular", False),
    "mono": ("DejaVu Sans Mono", "Book", False),
    "mono_cjk": ("Noto Sans Mono CJK SC", "Regular", True),
}
# Where Debian's fonts-noto-cjk and fonts-dejavu-core put them, for machines without fontconfig tools.
_KNOWN_FILES = {
    "sans": ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",),
    "bold": ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",),
    "serif": ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",),
    "mono": ("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",),
    "mono_cjk": ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",),
}
_FALLBACK = {"bold": "sans", "serif": "sans", "mono": "mono_cjk"}


class FontsMissing(RuntimeError):
    """The CJK fonts the generator needs are not installed (Debian: fonts-noto-cjk)."""


def _fc_list() -> list[tuple[str, int, str, str]]:
    try:
        out = subprocess.run(
            ["fc-list", "-f", "%{file}|%{index}|%{family}|%{style}\n"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = []
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 4 and parts[1].isdigit():
            rows.append((parts[0], int(parts[1]), parts[2], parts[3]))
    return rows


def _face_in(path: str, family: str, style: str) -> int | None:
    """Index of the face named family/style inside a font file (TTC collections hold several)."""
    for index in range(16):
        try:
            name = ImageFont.truetype(path, 10, index=index).getname()
        except OSError:
            return None
        if name[0] == family and (name[1] or "").lower() in {style.lower(), "regular" if style == "Book" else ""}:
            return index
    return None


@functools.cache
def _face(kind: str) -> tuple[str, int] | None:
    family, style, _ = _FONT_FACES[kind]
    for path, index, families, styles in _fc_list():
        if family in families.split(",") and style in styles.split(","):
            return path, index
    for path in _KNOWN_FILES[kind]:
        if Path(path).exists() and (index := _face_in(path, family, style)) is not None:
            return path, index
    return None


@functools.cache
def font_paths() -> dict[str, tuple[str, int]]:
    """Resolve every font kind to (file, face index), raising FontsMissing when the CJK fonts are absent."""
    found: dict[str, tuple[str, int]] = {}
    for kind in ("sans", "mono_cjk", "bold", "serif", "mono"):
        face = _face(kind)
        if face is None:
            if _FONT_FACES[kind][2]:
                raise FontsMissing(f"font {_FONT_FACES[kind][0]!r} not found: apt-get install fonts-noto-cjk")
            face = found[_FALLBACK[kind]]
        found[kind] = face
    return found


def fonts_available() -> bool:
    """True when the generator can render (fonts-noto-cjk installed)."""
    try:
        font_paths()
    except FontsMissing:
        return False
    return True


@functools.cache
def require_real_ocr() -> None:
    """Skip the calling test unless the OCR extra (engine and runtime) and the CJK fonts are installed."""
    import pytest

    for module in ("rapidocr", "onnxruntime"):
        pytest.importorskip(module, reason=f"OCR extra not installed (pip install 'claude-doctor[ocr]'): no {module}")
    if not fonts_available():
        pytest.skip("fonts-noto-cjk not installed: cannot render test screenshots")


def _font(kind: str, px: int) -> ImageFont.FreeTypeFont:
    path, index = font_paths()[kind]
    # BASIC layout: raqm is not on every machine and would shift glyphs, breaking byte-for-byte determinism.
    return ImageFont.truetype(path, px, index=index, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def _mono_has(char: str) -> bool:
    """Whether the terminal font draws this character (DejaVu lacks ⎿ and ideographs)."""
    font = _font("mono", 20)
    if font.path == _font("mono_cjk", 20).path:
        return True
    # A missing glyph renders as the font's .notdef box, so compare against a surely unmapped code point.
    return char.isspace() or bytes(font.getmask(char)) != bytes(font.getmask("\U0010fffd"))


# --------------------------------------------------------------------------- text layout


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """Greedy line wrapping in pixels: between words for Latin text, between any two ideographs for CJK."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for token in _TOKENS.findall(paragraph):
            if token.isspace():
                current = current + " " if current else current
                continue
            trial = current + token
            if font.getlength(trial) <= width or not current or token in _NO_LINE_START:
                current = trial
            else:
                lines.append(current.rstrip())
                current = token
            # A single token wider than the line (long JSON, URLs) is split by characters, as browsers do.
            while font.getlength(current) > width and len(current) > 1:
                cut = len(current) - 1
                while cut > 1 and font.getlength(current[:cut]) > width:
                    cut -= 1
                lines.append(current[:cut])
                current = current[cut:]
        lines.append(current.rstrip())
    return lines


def _ellipsize(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


class _Canvas:
    """ImageDraw in layout points: every coordinate and size is multiplied by the device pixel ratio."""

    def __init__(self, width: float, height: float, dpr: float, bg: Color) -> None:
        self.k = dpr
        self.img = Image.new("RGB", (round(width * dpr), round(height * dpr)), bg)
        self.draw = ImageDraw.Draw(self.img)

    def font(self, kind: str, size: float) -> ImageFont.FreeTypeFont:
        return _font(kind, max(6, round(size * self.k)))

    def length(self, text: str, kind: str, size: float) -> float:
        return self.font(kind, size).getlength(text) / self.k

    def box(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        fill: Color | None = None,
        outline: Color | None = None,
        radius: float = 0,
        width: float = 1,
    ) -> None:
        k = self.k
        xy = (round(x0 * k), round(y0 * k), round(x1 * k), round(y1 * k))
        if xy[2] <= xy[0] or xy[3] <= xy[1]:
            return
        self.draw.rounded_rectangle(
            xy, radius=round(radius * k), fill=fill, outline=outline, width=max(1, round(width * k))
        )

    def circle(self, cx: float, cy: float, r: float, fill: Color | None, outline: Color | None = None) -> None:
        k = self.k
        self.draw.ellipse(
            (round((cx - r) * k), round((cy - r) * k), round((cx + r) * k), round((cy + r) * k)), fill, outline
        )

    def line(self, points: list[tuple[float, float]], fill: Color, width: float = 1) -> None:
        self.draw.line(
            [(round(x * self.k), round(y * self.k)) for x, y in points], fill=fill, width=max(1, round(width * self.k))
        )

    def text(self, x: float, y: float, text: str, kind: str, size: float, fill: Color, anchor: str = "la") -> None:
        self.draw.text(
            (round(x * self.k), round(y * self.k)), text, font=self.font(kind, size), fill=fill, anchor=anchor
        )

    def para(
        self,
        x: float,
        y: float,
        text: str,
        kind: str,
        size: float,
        fill: Color,
        width: float,
        leading: float = 1.5,
        align: str = "left",
        draw: bool = True,
    ) -> float:
        """Draw wrapped text with its top-left at (x, y) and return the height it takes."""
        font = self.font(kind, size)
        lines = wrap(text, font, width * self.k)
        step = size * leading
        if draw:
            for i, line in enumerate(lines):
                top = y + i * step + (step - size * 1.2) / 2
                if align == "center":
                    self.text(x + width / 2, top, line, kind, size, fill, anchor="ma")
                elif align == "right":
                    self.text(x + width, top, line, kind, size, fill, anchor="ra")
                else:
                    self.text(x, top, line, kind, size, fill)
        return len(lines) * step

    def button(
        self, x: float, y: float, label: str, size: float, fg: Color, bg: Color | None, border: Color | None
    ) -> float:
        """Draw a pill button at (x, y) and return its width."""
        pad, height = size * 1.0, size * 2.3
        width = self.length(label, "sans", size) + 2 * pad
        self.box(x, y, x + width, y + height, fill=bg, outline=border, radius=size * 0.5)
        self.text(x + width / 2, y + height / 2, label, "sans", size, fg, anchor="mm")
        return width


# --------------------------------------------------------------------------- themes and chatter


@dataclass(frozen=True)
class _Theme:
    bg: Color
    sidebar: Color
    text: Color
    muted: Color
    border: Color
    bubble: Color
    input: Color
    err_bg: Color
    err_border: Color
    err_text: Color
    primary_bg: Color
    primary_fg: Color
    accent: Color = (217, 119, 87)


_LIGHT = _Theme(
    bg=(250, 249, 245),
    sidebar=(243, 241, 234),
    text=(41, 38, 27),
    muted=(115, 114, 108),
    border=(222, 220, 209),
    bubble=(240, 238, 230),
    input=(255, 255, 255),
    err_bg=(253, 237, 236),
    err_border=(240, 192, 188),
    err_text=(165, 38, 36),
    primary_bg=(41, 38, 27),
    primary_fg=(250, 249, 245),
)
_DARK = _Theme(
    bg=(38, 38, 36),
    sidebar=(31, 30, 29),
    text=(236, 234, 225),
    muted=(156, 154, 146),
    border=(64, 63, 58),
    bubble=(20, 20, 19),
    input=(48, 48, 46),
    err_bg=(66, 34, 32),
    err_border=(122, 54, 50),
    err_text=(255, 176, 166),
    primary_bg=(236, 234, 225),
    primary_fg=(38, 38, 36),
)

_UI = {
    "en": {
        "new_chat": "New chat",
        "chats": "Chats",
        "projects": "Projects",
        "recents": "Recents",
        "reply": "Reply to Claude…",
        "disclaimer": "Claude can make mistakes. Please double-check responses.",
        "try_again": "Try again",
        "new_conversation": "Start a new chat",
        "share": "Share",
        "went_wrong": "Something went wrong",
        "plan": "Pro plan",
        "model": "Sonnet 4.5",
        "copy": "Copy",
        "today": "Today",
    },
    "zh": {
        "new_chat": "新聊天",
        "chats": "聊天",
        "projects": "项目",
        "recents": "最近",
        "reply": "回复 Claude…",
        "disclaimer": "Claude 可能会出错。请核实重要信息。",
        "try_again": "重试",
        "new_conversation": "开始新聊天",
        "share": "分享",
        "went_wrong": "出现了一些问题",
        "plan": "专业版",
        "model": "Sonnet 4.5",
        "copy": "复制",
        "today": "今天",
    },
}

_TITLES = {
    "en": (
        "Cover letter edits",
        "Pandas merge duplicates",
        "Weekend trip to Kraków",
        "FastAPI project layout",
        "SQL window functions",
        "Birthday speech ideas",
        "Regex for ISO dates",
        "Meeting notes summary",
        "Sourdough starter help",
        "Explain Kubernetes probes",
    ),
    "zh": (
        "周报润色",
        "大文件读取内存问题",
        "向量数据库入门",
        "请假邮件",
        "杭州三日游计划",
        "SQL 查询优化",
        "简历修改建议",
        "周末菜谱",
        "英语面试准备",
        "论文摘要翻译",
    ),
}
# (user message, assistant reply) pairs: the chat around the error.
_CHATTER = {
    "en": (
        (
            "Can you help me rewrite this cover letter so it sounds less stiff?",
            "Of course. I kept your structure but shortened the opening and replaced the list of duties "
            "with two concrete results, which reads warmer and more confident.",
        ),
        (
            "Why does my pandas merge produce duplicate rows?",
            "A merge repeats rows when the key is not unique on one side. Check with "
            "df.duplicated('id').sum() on both frames before merging.",
        ),
        (
            "Summarise the attached meeting notes in five bullet points.",
            "Here is the summary: the launch moves to March, design owns the onboarding flow, and the "
            "budget review happens next Tuesday.",
        ),
        (
            "What's a good way to structure a FastAPI project with background jobs?",
            "Keep the web app and the workers in separate entry points that share one settings module, "
            "and let a queue such as Redis carry the jobs between them.",
        ),
    ),
    "zh": (
        (
            "帮我把这段周报改得更简洁一点。",
            "当然可以。我删掉了重复的描述，把重点放在本周完成的三项工作上，并把下周计划单独列出来。",
        ),
        (
            "为什么我的 Python 脚本在读取大文件时内存会爆掉？",
            "因为 read() 会一次性把整个文件读入内存。可以改成逐行迭代，或者用 chunksize 分块读取。",
        ),
        (
            "请用三句话解释一下什么是向量数据库。",
            "向量数据库存储的是文本或图片的向量表示，它按相似度而不是精确匹配来检索数据。",
        ),
        (
            "帮我写一封请假邮件，语气正式一些。",
            "好的，下面是一封正式的请假邮件草稿，你可以根据实际日期和原因进行修改。",
        ),
    ),
}
_FOLLOW_UPS = {
    "en": ("Thanks! Can you make it a bit shorter?", "Great, now add a short conclusion.", "ok, and the next step?"),
    "zh": ("谢谢！能再短一点吗？", "很好，再加一个简短的结尾。", "好的，下一步呢？"),
}


def _lang(error: str, lang: str | None) -> str:
    return lang or ("zh" if has_cjk(error) else "en")


# --------------------------------------------------------------------------- styles


def _error_box(
    c: _Canvas,
    th: _Theme,
    x: float,
    y: float,
    width: float,
    error: str,
    ui: dict[str, str],
    size: float,
    draw: bool = True,
) -> float:
    """The red inline error card with its buttons; returns its height."""
    pad = size
    text_x = x + pad + size * 1.9
    text_h = c.para(text_x, y + pad, error, "sans", size, th.err_text, width - (text_x - x) - pad, 1.5, draw=False)
    height = pad + text_h + size * 0.8 + size * 2.3 + pad
    if draw:
        c.box(x, y, x + width, y + height, fill=th.err_bg, outline=th.err_border, radius=size * 0.6)
        c.circle(x + pad + size * 0.6, y + pad + size * 0.75, size * 0.6, None, th.err_text)
        c.text(x + pad + size * 0.6, y + pad + size * 0.75, "!", "bold", size * 0.8, th.err_text, anchor="mm")
        c.para(text_x, y + pad, error, "sans", size, th.err_text, width - (text_x - x) - pad, 1.5)
        by = y + pad + text_h + size * 0.8
        bx = text_x + c.button(text_x, by, ui["try_again"], size * 0.9, th.primary_fg, th.primary_bg, None) + size * 0.6
        c.button(bx, by, ui["new_conversation"], size * 0.9, th.text, th.input, th.border)
    return height


def _chevron(c: _Canvas, x: float, y: float, r: float, colour: Color) -> None:
    """A small "v" drop-down mark (the ⌄ glyph is missing from the CJK fonts)."""
    c.line([(x - r, y - r / 2), (x, y + r / 2), (x + r, y - r / 2)], colour, 1.2)


def _web(error: str, lang: str, rng: random.Random, dark: bool, dpr: float) -> Image.Image:
    th, ui = (_DARK if dark else _LIGHT), _UI[lang]
    width, height, side = 1440, 900, 288
    c = _Canvas(width, height, dpr, th.bg)
    (user, reply), follow = rng.choice(_CHATTER[lang]), rng.choice(_FOLLOW_UPS[lang])
    titles = rng.sample(_TITLES[lang], 9)
    col_w = 720
    col_x = side + (width - side - col_w) / 2
    input_top = height - 150

    def conversation(y: float, draw: bool) -> float:
        for text in (user, None, follow):
            if text is None:
                y += c.para(col_x, y, reply, "serif", 16, th.text, col_w, 1.65, draw=draw) + 8
                if draw:
                    c.text(col_x, y + 4, ui["copy"], "sans", 12, th.muted)
                y += 36
                continue
            bubble_h = c.para(col_x + 48, y + 12, text, "sans", 16, th.text, col_w - 80, 1.5, draw=False) + 24
            if draw:
                c.box(col_x, y, col_x + col_w - 20, y + bubble_h, fill=th.bubble, radius=14)
                c.circle(col_x + 24, y + 24, 14, th.primary_bg)
                c.text(col_x + 24, y + 24, "AK", "bold", 11, th.primary_fg, anchor="mm")
                c.para(col_x + 48, y + 12, text, "sans", 16, th.text, col_w - 80, 1.5)
            y += bubble_h + 24
        y += _error_box(c, th, col_x, y, col_w, error, ui, 15, draw=draw)
        return y

    # Scroll like the browser does: the newest message (the error) sits just above the input box.
    content_h = conversation(0, draw=False)
    conversation(min(84.0, input_top - 28 - content_h), draw=True)

    c.box(side, 0, width, 60, fill=th.bg)
    title = _ellipsize(titles[0], c.font("sans", 14), 400 * dpr)
    c.text(side + (width - side) / 2, 30, title, "sans", 14, th.text, anchor="mm")
    _chevron(c, side + (width - side) / 2 + c.length(title, "sans", 14) / 2 + 12, 30, 4, th.muted)
    c.button(width - 100, 14, ui["share"], 13, th.text, th.input, th.border)
    c.box(side, input_top - 16, width, height, fill=th.bg)
    c.box(col_x, input_top, col_x + col_w, input_top + 104, fill=th.input, outline=th.border, radius=16)
    c.text(col_x + 18, input_top + 18, ui["reply"], "sans", 16, th.muted)
    c.circle(col_x + 32, input_top + 78, 14, None, th.border)
    c.text(col_x + 32, input_top + 78, "+", "sans", 16, th.muted, anchor="mm")
    c.text(col_x + col_w - 76, input_top + 78, ui["model"], "sans", 13, th.muted, anchor="rm")
    _chevron(c, col_x + col_w - 66, input_top + 78, 3.5, th.muted)
    c.box(col_x + col_w - 52, input_top + 62, col_x + col_w - 16, input_top + 94, fill=th.accent, radius=8)
    c.text(col_x + col_w - 34, input_top + 78, "↑", "bold", 16, (255, 255, 255), anchor="mm")
    c.text(col_x + col_w / 2, input_top + 122, ui["disclaimer"], "sans", 12, th.muted, anchor="ma")

    c.box(0, 0, side, height, fill=th.sidebar)
    c.line([(side, 0), (side, height)], th.border)
    c.text(22, 22, "Claude", "serif", 22, th.text)
    c.circle(34, 84, 13, th.accent)
    c.text(34, 84, "+", "bold", 16, (255, 255, 255), anchor="mm")
    c.text(56, 84, ui["new_chat"], "sans", 14, th.accent, anchor="lm")
    for i, label in enumerate((ui["chats"], ui["projects"])):
        c.text(22, 126 + i * 34, label, "sans", 14, th.text, anchor="lm")
    c.text(22, 208, ui["recents"], "sans", 12, th.muted, anchor="lm")
    for i, title in enumerate(titles):
        if i == 0:
            c.box(12, 224 + i * 36, side - 12, 256 + i * 36, fill=th.border, radius=8)
        c.text(
            22, 240 + i * 36, _ellipsize(title, c.font("sans", 14), (side - 44) * dpr), "sans", 14, th.text, anchor="lm"
        )
    c.line([(12, height - 70), (side - 12, height - 70)], th.border)
    c.circle(36, height - 36, 16, th.primary_bg)
    c.text(36, height - 36, "AK", "bold", 12, th.primary_fg, anchor="mm")
    c.text(62, height - 44, "Anna Kowalska", "sans", 14, th.text, anchor="lm")
    c.text(62, height - 26, ui["plan"], "sans", 12, th.muted, anchor="lm")
    return c.img


def _terminal(error: str, lang: str, rng: random.Random, dpr: float) -> Image.Image:
    del lang  # Claude Code's own UI is English; only the error text varies.
    size, lead = 14, 19
    cols, rows = 104, 28
    cell = _font("mono", round(size * dpr)).getlength("M") / dpr
    title_h = 28
    width, height = cols * cell + 24, rows * lead + title_h + 20
    bg, fg, dim = (28, 28, 30), (214, 214, 214), (128, 128, 128)
    red, green, orange = (235, 110, 100), (110, 200, 120), (215, 119, 87)
    c = _Canvas(width, height, dpr, bg)
    c.box(0, 0, width, title_h, fill=(50, 50, 52))
    for i, colour in enumerate(((255, 95, 87), (254, 188, 46), (40, 200, 64))):
        c.circle(16 + i * 20, title_h / 2, 6, colour)
    project = rng.choice(("shop-api", "thesis", "infra", "blog"))
    c.text(
        width / 2,
        title_h / 2,
        f"anna@mbp: ~/{project} — claude — {cols}×{rows}",
        "sans",
        12,
        (190, 190, 190),
        anchor="mm",
    )

    screen: list[tuple[str, Color]] = []

    def emit(text: str, colour: Color = fg, indent: int = 0) -> None:
        # Terminals wrap at the column edge, mid-word; Claude Code indents continuation lines.
        line, used = "", 0
        for ch in text:
            w = 2 if _CJK.match(ch) else 1
            if used + w > cols:
                screen.append((line, colour))
                line, used = " " * indent, indent
            line, used = line + ch, used + w
        screen.append((line, colour))

    emit("╭" + "─" * 58 + "╮", orange)
    for inner in (
        " ✻ Welcome to Claude Code!",
        "",
        "   /help for help, /status for your current setup",
        "",
        f"   cwd: /home/anna/{project}",
    ):
        emit("│" + inner.ljust(58) + "│", orange)
    emit("╰" + "─" * 58 + "╯", orange)
    emit("")
    task = rng.choice(
        (
            "the checkout tests fail since yesterday, can you look?",
            "add retries to the upload client and update the docs",
            "why is the CI job slower than last week?",
        )
    )
    emit("> " + task, dim)
    emit("")
    emit("● I'll start by running the test suite to see what fails.", fg)
    emit("")
    emit("● Bash(pytest tests/ -x -q)", fg)
    emit("  ⎿  ....F", dim)
    emit("     FAILED tests/test_checkout.py::test_discount_rounding - assert 9.99 == 10.0", dim)
    emit("     … +14 lines (ctrl+r to expand)", dim)
    emit("")
    emit("● Read(src/checkout/discount.py)", fg)
    emit("  ⎿  Read 84 lines (ctrl+r to expand)", dim)
    emit("  ⎿  " + error, red, indent=5)
    emit("")
    body_rows = len(screen)
    c_y = title_h + 10
    for row, (line, colour) in enumerate(screen[-(rows - 5) :] if body_rows > rows - 5 else screen):
        col = 0
        for ch in line:
            w = 2 if _CJK.match(ch) else 1
            if not ch.isspace():
                colour_here = green if ch == "●" and colour is fg else colour
                kind = "mono" if _mono_has(ch) else "mono_cjk"
                c.text(12 + col * cell, c_y + row * lead + lead / 2, ch, kind, size, colour_here, anchor="lm")
            col += w
    y = c_y + min(body_rows, rows - 5) * lead + 4
    c.box(12, y, 12 + (cols - 1) * cell, y + lead * 2.2, outline=dim, radius=5)
    c.text(12 + 2 * cell, y + lead * 1.1, ">", "mono", size, fg, anchor="lm")
    c.box(12 + 4 * cell, y + lead * 0.55, 12 + 5 * cell, y + lead * 1.65, fill=(200, 200, 200))
    c.text(12 + 2 * cell, y + lead * 2.9, "? for shortcuts", "mono", size - 1, dim, anchor="lm")
    return c.img


def _phone(error: str, lang: str, rng: random.Random, dark: bool, dpr: float) -> Image.Image:
    th, ui = (_DARK if dark else _LIGHT), _UI[lang]
    width, height = 360, 780
    c = _Canvas(width, height, dpr, th.bg)
    exchanges, follow = rng.sample(_CHATTER[lang], 2), rng.choice(_FOLLOW_UPS[lang])
    title = rng.choice(_TITLES[lang])
    clock = rng.choice(("9:41", "14:32", "23:07"))

    input_top = height - 96
    bubble_w = 250

    def bubble(y: float, text: str, draw: bool) -> float:
        h = c.para(0, 0, text, "sans", 16, th.text, bubble_w - 28, 1.45, draw=False) + 20
        lines = wrap(text, c.font("sans", 16), (bubble_w - 28) * dpr)
        w = min(bubble_w, max(c.length(line, "sans", 16) for line in lines) + 30)
        if draw:
            c.box(width - 16 - w, y, width - 16, y + h, fill=th.bubble, radius=18)
            c.para(width - 16 - w + 14, y + 10, text, "sans", 16, th.text, w - 26, 1.45)
        return h

    def conversation(y: float, draw: bool) -> float:
        for user, reply in exchanges:
            y += bubble(y, user, draw) + 18
            y += c.para(18, y, reply, "serif", 16, th.text, width - 36, 1.6, draw=draw) + 10
            if draw:
                c.text(18, y, ui["copy"], "sans", 12, th.muted)
            y += 34
        y += bubble(y, follow, draw) + 18
        return y

    # The toast sits above the input bar; the chat scrolls so the last bubble ends above the toast.
    toast_w = width - 32
    toast_text_h = c.para(0, 0, error, "sans", 14, (255, 255, 255), toast_w - 32, 1.45, draw=False)
    toast_h = toast_text_h + 58
    toast_top = input_top - 14 - toast_h
    content_h = conversation(0, draw=False)
    conversation(min(112.0, toast_top - 10 - content_h), draw=True)

    # Status bar and header are drawn last so scrolled-away content slides under them.
    c.box(0, 0, width, 100, fill=th.bg)
    c.text(30, 22, clock, "bold", 15, th.text, anchor="lm")
    for i in range(4):
        c.box(262 + i * 5, 26 - 3 - i * 2.5, 265 + i * 5, 27, fill=th.text, radius=1)
    c.text(296, 22, "5G", "bold", 11, th.text, anchor="lm")
    c.box(318, 16, 342, 28, outline=th.text, radius=3)
    c.box(320, 18, 336, 26, fill=th.text, radius=2)
    c.text(20, 66, "‹", "sans", 30, th.text, anchor="lm")
    c.text(width / 2, 60, _ellipsize(title, c.font("bold", 16), 220 * dpr), "bold", 16, th.text, anchor="mm")
    c.text(width / 2, 80, "Claude " + ui["model"], "sans", 11, th.muted, anchor="mm")
    c.text(width - 24, 66, "⋯", "sans", 20, th.text, anchor="mm")
    c.line([(0, 100), (width, 100)], th.border)

    toast_bg = (52, 52, 50) if not dark else (74, 74, 70)
    c.box(16, toast_top, 16 + toast_w, toast_top + toast_h, fill=toast_bg, radius=12)
    c.para(32, toast_top + 12, error, "sans", 14, (250, 250, 248), toast_w - 32, 1.45)
    ay = toast_top + 12 + toast_text_h + 8
    c.text(16 + toast_w - 16, ay + 10, ui["try_again"], "bold", 14, (240, 150, 120), anchor="rm")
    c.text(32, ay + 10, ui["new_conversation"], "sans", 14, (200, 200, 196), anchor="lm")

    c.box(0, input_top - 4, width, height, fill=th.bg)
    c.box(12, input_top, width - 12, input_top + 52, fill=th.input, outline=th.border, radius=26)
    c.text(30, input_top + 26, ui["reply"], "sans", 16, th.muted, anchor="lm")
    c.circle(width - 40, input_top + 26, 16, th.accent)
    c.text(width - 40, input_top + 26, "↑", "bold", 16, (255, 255, 255), anchor="mm")
    c.box(width / 2 - 67, height - 14, width / 2 + 67, height - 9, fill=th.text, radius=3)
    return c.img


def _desktop(error: str, lang: str, rng: random.Random, dark: bool, dpr: float) -> Image.Image:
    th, ui = (_DARK if dark else _LIGHT), _UI[lang]
    width, height, side = 1280, 800, 260
    c = _Canvas(width, height, dpr, th.bg)
    c.box(0, 0, width, 38, fill=th.sidebar)
    for i, colour in enumerate(((255, 95, 87), (254, 188, 46), (40, 200, 64))):
        c.circle(20 + i * 20, 19, 6, colour)
    c.text(width / 2, 19, "Claude", "sans", 13, th.muted, anchor="mm")
    c.line([(0, 38), (width, 38)], th.border)
    c.box(0, 39, side, height, fill=th.sidebar)
    c.line([(side, 39), (side, height)], th.border)
    c.text(20, 70, ui["new_chat"], "sans", 14, th.accent, anchor="lm")
    c.text(20, 110, ui["recents"], "sans", 12, th.muted, anchor="lm")
    for i, title in enumerate(rng.sample(_TITLES[lang], 8)):
        c.text(
            20, 140 + i * 34, _ellipsize(title, c.font("sans", 14), (side - 40) * dpr), "sans", 14, th.text, anchor="lm"
        )

    cx, card_w = side + (width - side) / 2, 560
    text_h = c.para(0, 0, error, "sans", 15, th.muted, card_w, 1.6, draw=False)
    block_h = 64 + 24 + 34 + 16 + text_h + 28 + 38
    y = 39 + (height - 39 - block_h) / 2
    c.circle(cx, y + 32, 32, th.err_bg, th.err_border)
    c.text(cx, y + 32, "!", "bold", 30, th.err_text, anchor="mm")
    y += 64 + 24
    c.text(cx, y + 17, ui["went_wrong"], "bold", 22, th.text, anchor="mm")
    y += 34 + 16
    y += c.para(cx - card_w / 2, y, error, "sans", 15, th.muted, card_w, 1.6, align="center") + 28
    labels = (ui["try_again"], ui["new_conversation"])
    widths = [c.length(label, "sans", 14) + 28 for label in labels]
    bx = cx - (sum(widths) + 12) / 2
    bx += c.button(bx, y, labels[0], 14, th.primary_fg, th.primary_bg, None) + 12
    c.button(bx, y, labels[1], 14, th.text, th.input, th.border)
    c.text(cx, height - 24, "Claude for Desktop · v0.14.10", "sans", 11, th.muted, anchor="mm")
    return c.img


def _banner(error: str, lang: str, rng: random.Random, dark: bool, dpr: float) -> Image.Image:
    """A user's tight crop around the error card, the smallest image the bot gets."""
    del rng
    th, ui = (_DARK if dark else _LIGHT), _UI[lang]
    probe = _Canvas(10, 10, dpr, th.bg)
    h = _error_box(probe, th, 16, 14, 720, error, ui, 15, draw=False)
    c = _Canvas(752, h + 28, dpr, th.bg)
    _error_box(c, th, 16, 14, 720, error, ui, 15)
    return c.img


_DEFAULT_DPR = {"web_light": 1.0, "web_dark": 1.0, "terminal": 1.0, "phone": 3.0, "desktop": 1.0, "banner": 1.0}


# --------------------------------------------------------------------------- public API


def render_image(
    error: str,
    style: str,
    *,
    seed: int = 0,
    lang: str | None = None,
    dpr: float | None = None,
    dark: bool | None = None,
) -> Image.Image:
    """Draw one screenshot (RGB, before any degradation); the same arguments always give the same pixels."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {STYLES}")
    rng = random.Random(f"{style}:{seed}:{error}")
    lang = _lang(error, lang)
    ratio = _DEFAULT_DPR[style] if dpr is None else dpr
    if style == "terminal":
        return _terminal(error, lang, rng, ratio)
    is_dark = {"web_light": False, "web_dark": True}.get(style, seed % 2 == 1) if dark is None else dark
    if style in ("web_light", "web_dark"):
        return _web(error, lang, rng, is_dark, ratio)
    if style == "phone":
        return _phone(error, lang, rng, is_dark, ratio)
    if style == "desktop":
        return _desktop(error, lang, rng, is_dark, ratio)
    return _banner(error, lang, rng, is_dark, ratio)


def degrade(img: Image.Image, *, scale: float = 1.0, blur: float = 0.0, max_side: int | None = None) -> Image.Image:
    """Resample and blur the way screenshots get mangled on their way to the bot."""
    factor = scale
    if max_side and max(img.size) * factor > max_side:
        factor = max_side / max(img.size)
    if factor != 1.0:
        img = img.resize(
            (max(1, round(img.width * factor)), max(1, round(img.height * factor))), Image.Resampling.LANCZOS
        )
    if blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return img


def encode(img: Image.Image, jpeg_quality: int | None = None) -> bytes:
    """PNG bytes, or JPEG at the given quality (Telegram photos arrive as JPEG)."""
    buf = io.BytesIO()
    if jpeg_quality is None:
        img.save(buf, format="PNG", optimize=False)
    else:
        img.convert("RGB").save(buf, format="JPEG", quality=jpeg_quality)
    return buf.getvalue()


@dataclass(frozen=True)
class Shot:
    """One screenshot of the corpus: what to draw and how to degrade it."""

    name: str
    error: str
    style: str
    seed: int = 0
    scale: float = 1.0
    blur: float = 0.0
    jpeg_quality: int | None = None
    max_side: int | None = None
    dpr: float | None = None
    dark: bool | None = None
    # Paste onto a larger screen (w, h) at the same text size: a 4K monitor at 100% scaling.
    canvas: tuple[int, int] | None = None

    @property
    def lang(self) -> str:
        return _lang(self.error, None)

    def image(self) -> Image.Image:
        """The degraded image."""
        img = render_image(self.error, self.style, seed=self.seed, dpr=self.dpr, dark=self.dark)
        if self.canvas:
            screen = Image.new("RGB", self.canvas, img.getpixel((img.width - 1, img.height // 2)))
            screen.paste(img, (0, 0))
            img = screen
        return degrade(img, scale=self.scale, blur=self.blur, max_side=self.max_side)

    def data(self) -> bytes:
        """The file bytes the bot would receive."""
        return encode(self.image(), self.jpeg_quality)


def render(
    error: str,
    style: str,
    *,
    seed: int = 0,
    lang: str | None = None,
    scale: float = 1.0,
    blur: float = 0.0,
    jpeg_quality: int | None = None,
) -> bytes:
    """Render, degrade and encode one screenshot in a single call."""
    img = degrade(render_image(error, style, seed=seed, lang=lang), scale=scale, blur=blur)
    return encode(img, jpeg_quality)


# Telegram's "photo" path re-encodes to JPEG with the long side at most 1280 px; the quality here is an
# approximation of what arrives, not a documented constant.
TELEGRAM = {"max_side": 1280, "jpeg_quality": 80}


def corpus() -> list[Shot]:
    """The 32-shot benchmark set: every error in every style it plausibly appears in, plus degradations."""
    en, zh = ERRORS_EN, ERRORS_ZH
    capacity, disruption, interrupted, api529, length, timeout, limit = en
    connect, quota, later = zh
    shots = [
        Shot("web_light_capacity", capacity, "web_light"),
        Shot("web_light_length", length, "web_light", seed=1),
        Shot("web_light_quota_zh", quota, "web_light", seed=2),
        Shot("web_light_interrupted_jpeg60", interrupted, "web_light", seed=3, jpeg_quality=60),
        Shot("web_light_retina_disruption", disruption, "web_light", seed=4, dpr=2.0),
        Shot("web_dark_disruption", disruption, "web_dark"),
        Shot("web_dark_connect_zh", connect, "web_dark", seed=1),
        Shot("web_dark_interrupted_blur", interrupted, "web_dark", seed=2, blur=0.6),
        Shot("web_dark_later_zh_jpeg60", later, "web_dark", seed=3, jpeg_quality=60),
        Shot("terminal_529", api529, "terminal"),
        Shot("terminal_timeout", timeout, "terminal", seed=1),
        Shot("terminal_limit", limit, "terminal", seed=2),
        Shot("terminal_529_telegram", api529, "terminal", seed=3, **TELEGRAM),
        Shot("terminal_limit_retina_blur", limit, "terminal", seed=4, dpr=2.0, blur=0.8),
        Shot("phone_capacity", capacity, "phone", seed=0),
        Shot("phone_interrupted_dark", interrupted, "phone", seed=1),
        Shot("phone_connect_zh", connect, "phone", seed=2),
        Shot("phone_quota_zh_dark", quota, "phone", seed=3),
        Shot("phone_later_zh_telegram", later, "phone", seed=4, **TELEGRAM),
        Shot("phone_length_telegram_dark", length, "phone", seed=5, **TELEGRAM),
        Shot("phone_disruption_jpeg60_blur", disruption, "phone", seed=6, jpeg_quality=60, blur=1.0),
        Shot("desktop_disruption", disruption, "desktop", seed=0),
        Shot("desktop_capacity_dark", capacity, "desktop", seed=1),
        Shot("desktop_later_zh", later, "desktop", seed=2),
        Shot("desktop_connect_zh_dark_retina", connect, "desktop", seed=3, dpr=2.0),
        Shot("desktop_timeout_scaled", timeout, "desktop", seed=4, scale=0.8),
        Shot("banner_capacity", capacity, "banner", seed=0),
        Shot("banner_quota_zh_dark", quota, "banner", seed=1),
        Shot("banner_length_jpeg60", length, "banner", seed=2, jpeg_quality=60),
        Shot("banner_connect_zh", connect, "banner", seed=4),
        Shot("banner_529_dark_retina", api529, "banner", seed=5, dpr=2.0),
        Shot("banner_interrupted_small", interrupted, "banner", seed=6, scale=0.75, jpeg_quality=80),
    ]
    return shots


def hires_corpus() -> list[Shot]:
    """Large screenshots whose text is small for their size (4K at 100%, 150% scaling): the max-side sweep."""
    en, zh = ERRORS_EN, ERRORS_ZH
    return [
        Shot("web_light_1440p", en[0], "web_light", canvas=(2560, 1440)),
        Shot("web_light_4k", en[4], "web_light", seed=1, canvas=(3840, 2160)),
        Shot("web_dark_4k_zh", zh[0], "web_dark", seed=2, canvas=(3840, 2160)),
        Shot("web_light_150pct", en[2], "web_light", seed=3, dpr=1.5),
        Shot("web_dark_150pct_zh", zh[1], "web_dark", seed=4, dpr=1.5, jpeg_quality=80),
        Shot("desktop_1600p_zh", zh[2], "desktop", seed=2, canvas=(2560, 1600)),
        Shot("desktop_4k", en[1], "desktop", seed=5, canvas=(3840, 2160)),
        Shot("terminal_4k", en[3], "terminal", seed=1, canvas=(3840, 2160)),
        Shot("terminal_150pct_limit", en[6], "terminal", seed=2, dpr=1.5),
        Shot("desktop_retina_zh", zh[0], "desktop", seed=6, dpr=2.0),
    ]


def with_degradation(shot: Shot, **changes: object) -> Shot:
    """A copy of a shot with other degradation settings (for max-side sweeps)."""
    return replace(shot, **changes)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """Write the corpus to a folder so a person can look at it."""
    out = Path((argv or sys.argv[1:] or ["screenshots"])[0])
    out.mkdir(parents=True, exist_ok=True)
    for shot in corpus():
        ext = "png" if shot.jpeg_quality is None else "jpg"
        (out / f"{shot.name}.{ext}").write_bytes(shot.data())
    print(f"wrote {len(corpus())} screenshots to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
