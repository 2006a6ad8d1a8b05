"""Text normalisation shared by the knowledge base and the matcher, so both sides compare like with like."""

from __future__ import annotations

import functools
import re
import unicodedata

# Zero-width and bidi controls survive copy-paste from apps and break substring matches.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# NFKC leaves typographic quotes and dashes alone; users' keyboards and apps mix them freely.
_PUNCT_MAP = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u2010": "-",
    "\u2011": "-",
    "\u2012": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2015": "-",
    "\u2212": "-",
    "\u3000": " ",
    "\u00a0": " ",
}
# str.translate with a dict walks every character in Python: a regex that only stops at the rare ones is faster.
_PUNCT = re.compile("[" + "".join(_PUNCT_MAP) + "]")
CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK = CJK_CHAR
_KANA_RANGE = "\u3040-\u30ff"
_HANGUL_RANGE = "\uac00-\ud7af"
# Letters of the other languages Claude's apps ship in, as case-folded text has them: Latin with accents (ß-ÿ
# without ÷, and Latin Extended-A/B), Cyrillic and Korean hangul, all written with spaces between words; then
# Japanese kana, which run on with hanzi.
SPACED_LETTERS = f"0-9a-z\u00df-\u00f6\u00f8-\u024f\u0400-\u04ff{_HANGUL_RANGE}"
LETTERS = SPACED_LETTERS + _KANA_RANGE
# Japanese kana and Korean hangul: scripts the matcher reads, and which tell a text's language.
KANA = re.compile(f"[{_KANA_RANGE}]")
HANGUL = re.compile(f"[{_HANGUL_RANGE}]")
# The compact form keeps only letters, digits and CJK ideographs: OCR drops spaces and users
# re-punctuate, so matching on it makes "timed out", "timedout" and "Timed-Out" the same.
_NOT_COMPACT = re.compile(rf"[^{LETTERS}\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
# Combining marks (strike-through, underline, accents) stacked on letters by "fancy text" generators.
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
# Cyrillic and Greek letters that look Latin: mixed into English words they defeat matching.
_LOOKALIKE_MAP = {
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ү": "y", "һ": "h",
    "α": "a", "ο": "o", "ρ": "p", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "τ": "t", "υ": "u", "χ": "x",
}  # fmt: skip
_LOOKALIKE = re.compile("[" + "".join(_LOOKALIKE_MAP) + "]")
_LATIN = re.compile(r"[a-z]")
_WORDISH = re.compile(r"\w+")


@functools.cache
def _t2s():  # type: ignore[no-untyped-def]
    import opencc

    # Taiwan phrasing too (伺服器 -> 服务器, 網路連線 -> 网络连接), not just characters.
    return opencc.OpenCC("tw2sp.json")


def has_cjk(text: str) -> bool:
    """Whether the text contains any CJK ideograph."""
    return _CJK.search(text) is not None


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese to Simplified; text without ideographs is returned as is."""
    if not has_cjk(text):
        return text
    if "過載" in text:
        # Taiwan phrasing maps 過載 to 重载 (as in function overloading); in an error it is plain overload.
        text = text.replace("過載", "过载")
    return _t2s().convert(text)


def clean(text: str) -> str:
    """Case-fold and fold the Unicode variants users paste (full-width, curly quotes, zero-width, Traditional)."""
    text = _INVISIBLE.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):  # the quick check is much cheaper than normalising
        text = unicodedata.normalize("NFKC", text)
    text = _PUNCT.sub(lambda m: _PUNCT_MAP[m.group()], text).casefold()
    if _COMBINING.search(text):
        text = unicodedata.normalize("NFC", _COMBINING.sub("", unicodedata.normalize("NFD", text)))
    if _LOOKALIKE.search(text):
        text = _fold_lookalikes(text)
    text = to_simplified(text)
    # split() breaks on the same whitespace as \s+ and drops the ends, in a fraction of a regex pass.
    return " ".join(text.split())


def _fold_lookalikes(text: str) -> str:
    """Map Cyrillic/Greek look-alikes to Latin inside words that also have Latin letters (genuine Cyrillic has none)."""

    def fold(m: re.Match[str]) -> str:
        word = m.group()
        return _LOOKALIKE.sub(lambda c: _LOOKALIKE_MAP[c.group()], word) if _LATIN.search(word) else word

    return _WORDISH.sub(fold, text)


def compact(cleaned: str) -> str:
    """Drop everything but letters, digits and ideographs from already cleaned text."""
    return _NOT_COMPACT.sub("", cleaned)


def weight(compact_text: str) -> float:
    """How much information a compact string carries: an ideograph says about as much as 2.5 letters."""
    cjk = len(_CJK.findall(compact_text))
    return (len(compact_text) - cjk) + 2.5 * cjk
