"""Diagnose a text: which of the four causes (or which known non-cause) it shows, how sure, and why."""

from __future__ import annotations

import bisect
import math
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein

from bot.core.knowledge import Entry, KnowledgeBase, Signature, iter_entries
from bot.core.normalize import KANA, SPACED_LETTERS, clean, compact, has_cjk, weight

# Longer input is cut to its first and last halves of this: a 64 KB log is the largest realistic paste, the cap
# bounds the work per message, and a log's error sits at its end.
MAX_INPUT_CHARS = 65_536
# How the matcher weighs what it finds (ratios, strengths, typo and run-together rules) is calibration, in
# matcher.yaml's `calibration` (KnowledgeBase.calibration). What stays here bounds the work done per message or the
# memory kept, and changes no diagnosis a message within the bounds gets: code, not data. So are the numbers written
# inline in a scoring formula (a cut-short copy's 0.9 + 0.1 * coverage): they are the formula's shape, not a knob.
# Texts longer than this (compact chars) go through the n-gram prefilter instead of scoring every signature; the
# prefilter keeps the best candidates by shared grams of this length. Code: a speed-up, exact on the corpora.
_PREFILTER_FROM = 400
_GRAM = 4
_MAX_CANDIDATES = 6
# OCR and typo repair apply to texts of up to this many words (chat lines and screenshots, not logs). Code: it
# bounds the work per message; logs written by programs have no typos to repair.
_REPAIR_MAX_WORDS = 300
# Typo correction looks at the first N words of a text. Code: it bounds the work per message.
_TYPO_LIMIT = 150
# Remembered fuzzy lookups of unknown tokens. Code: a memory bound, no effect on answers.
_NEAR_CACHE = 20_000
# How many distinct unknown underscored tokens of one text get the fuzzy search. Code: it bounds the work per message.
_NEAR_TOKENS = 32
# The pseudo-entry that negation phrases are filed under.
_NEGATION = ""
# Words of spaced scripts: Latin (accents too), Cyrillic, hangul. Kana run with hanzi and are matched as they are.
_WORD_CHARS = SPACED_LETTERS + "_"
_WORD = re.compile(rf"[{_WORD_CHARS}]+(?:['./-][{_WORD_CHARS}]+)*")
_PARTS = re.compile(r"['./-]")
# Anchored at a word's start: unanchored, a long run of letters with no "_" is rescanned from every position.
_UNDERSCORED = re.compile(r"(?<![a-z0-9])[a-z0-9]+_[a-z0-9_]*")
# Only Latin letters tell run-together text: Chinese has no spaces to drop.
_LATIN_LETTER = re.compile(r"[a-z]")


def head_and_tail(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """The text, or its first and last `limit`/2 characters joined by a line break when it is longer."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n{text[-half:]}"


def _singular(word: str) -> str:
    """A canonical singular, applied to text and cues alike, so "internal errors" meets the cue "internal error"."""
    if (
        len(word) > 3
        and word[-1] == "s"
        and not word.endswith(("ss", "us", "is"))
        and "_" not in word
        and "'" not in word
    ):
        return word[:-1]
    return word


_A_NOT_A = re.compile(r"(是|能|会|有)(?:不|没)\1")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def _cjk_heads(packed: str) -> set[str]:
    """Every hanzi and every pair of neighbouring hanzi in the text: the keys under which hanzi cues are filed."""
    heads: set[str] = set()
    for run in _CJK_RUN.findall(packed):
        heads.update(run)
        heads.update(map(str.__add__, run, run[1:]))
    return heads


def _required_literal(pattern: str) -> str:
    """The longest run of plain characters that every match of `pattern` contains ("" if unsure): outside groups,
    classes and counts, without escapes, and not made optional by a quantifier."""
    if "|" in re.sub(r"\(.*?\)|\[.*?\]", "", pattern):
        return ""  # an alternation at the top level: no part is required
    runs, run, depth, i = [], "", 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            runs.append(run)
            run, i = "", i + 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if depth or ch in "()[]{}" or not (ch.isalnum() or has_cjk(ch)):
            runs.append(run)
            run = ""
        elif i + 1 < len(pattern) and pattern[i + 1] in "?*{":
            runs.append(run)  # "s?" or "x{0,2}": this character may be absent
            run = ""
        else:
            run += ch
        i += 1
    runs.append(run)
    return max(runs, key=weight)


def _unspaced(text: str) -> bool:
    """Whether a cue is written without spaces between words (hanzi or kana): matched as a substring, not as words."""
    return has_cjk(text) or KANA.search(text) is not None


def _head(cue: str) -> str:
    """The key a hanzi cue is filed under: its first two characters if both are hanzi, else "" (always checked)."""
    return cue[:2] if _CJK_RUN.fullmatch(cue[:2]) else ""


def _parts(words: list[str]) -> list[str]:
    """The pieces of joined words ("claude's" -> "claude", "s"); logs repeat their words, so each is split once."""
    cache = _PARTS_OF
    if len(cache) > _FOLD_CACHE:
        cache.clear()
    out: list[str] = []
    for w in words:
        parts = cache.get(w)
        if parts is None:
            parts = cache[w] = () if w.isalnum() else tuple(p for p in _PARTS.split(w) if p and p != w)
        if parts:
            out += parts
    return out


_PARTS_OF: dict[str, tuple[str, ...]] = {}


def _status_codes(cleaned: str) -> set[int]:
    """HTTP status codes the text gives as such: after an error word, before a reason or body, in the plural
    ("500s"), or alone."""
    if len(cleaned) <= _OCR_CODE_MAX and _OCR_CODE.search(cleaned):
        cleaned = _OCR_CODE.sub(lambda m: m.group().translate(_OCR_DIGITS), cleaned)
    bare = cleaned.strip()
    if bare.isdigit():
        return {int(bare)} if len(bare) == 3 and bare[0] in "12345" else set()
    codes = set()
    # Logs are full of numbers: the window before one is searched only if an error word starts in it.
    triggers: list[int] | None = None
    for m in _NUMBER.finditer(cleaned):
        start, end = m.span(1)
        if start and cleaned[start - 1] in _NOT_BEFORE_NUMBER:
            continue
        if m.group(2) or _STATUS_AFTER.match(cleaned, end):
            codes.add(int(m.group(1)))
            continue
        if triggers is None:
            triggers = [t.start() for t in _STATUS_WORD.finditer(cleaned)]
        i = bisect.bisect_left(triggers, start - 30)
        if i < len(triggers) and triggers[i] < start and _STATUS_BEFORE.search(cleaned[max(0, start - 30) : start]):
            codes.add(int(m.group(1)))
    return codes


def _deletions(word: str) -> list[str]:
    return [word[:i] + word[i + 1 :] for i in range(len(word))]


def _ocr_fold(word: str, vocabulary: frozenset[str]) -> str:
    if "_" in word:
        return word
    if _MIXED.match(word):
        word = word.translate(_LEET)
    # "rn" read for "m" only where that makes a word we know: "lirnit" is "limit", "internal" stays.
    if "rn" in word and word not in vocabulary:
        fixed = word.replace("rn", "m")
        return fixed if fixed in vocabulary else word
    return word


# The same rule as _singular, in one pass over the text: a trailing s after 3+ letters, unless ss, us or is.
_PLURAL = re.compile(r"\b([a-z0-9]{2,}[a-z0-9](?<![sui]))s\b")


def _words(cleaned: str) -> list[str]:
    """The text's words, each in its canonical singular (logs repeat words, so each spelling is folded once)."""
    words = _WORD.findall(cleaned)
    folded = _FOLDED
    if len(folded) > _FOLD_CACHE:
        folded.clear()
    for i, word in enumerate(words):
        one = folded.get(word)
        if one is None:
            one = folded[word] = _PLURAL.sub(r"\1", word)
        words[i] = one
    return words


_FOLDED: dict[str, str] = {}
# Remembered spellings and their parts, emptied past this many. Code: a memory bound, no effect on answers.
_FOLD_CACHE = 50_000


# OCR reads l as 1 and o as 0 inside words: "e1evated err0rs".
_LEET = str.maketrans("01345", "oleas")
_MIXED = re.compile(r"(?=.*[a-z])(?=.*[0-9])")
# Three digits not inside a longer number or version; the look-behind is checked in code (a regex one costs at
# every position of a long log).
_NUMBER = re.compile(r"([1-5][0-9]{2})(s?)(?![0-9]|[.,:][0-9])")
_NOT_BEFORE_NUMBER = frozenset("0123456789.,:")
# Before a status code: an error word, maybe a word or an HTTP version between ("api error: repeated 529").
_STATUS_TRIGGER = (
    r"error|status|code|http|api|错误|状态码|返回|报|被|遇到|出现|直接|一直|全部|全是|都是|提示|got|getting|hit|hitting"
    r"|returns?|returned|transient|multiple"
    r"|returning|throws?|throwing|threw"
)
_STATUS_BEFORE = re.compile(rf"(?:{_STATUS_TRIGGER})(?:[^0-9a-z]{{0,12}}|\W+[a-z]+\W+|/[0-9.]+\s+)$")
# OCR reads 0 as o and 1 as l inside a status code ("5O3", "5OO"): folded back in chat-sized texts only.
_OCR_CODE = re.compile(r"(?<![a-z0-9])[1-5](?:[0-9][ol]|[ol][0-9]|[ol]{2})(?![a-z0-9])")
_OCR_DIGITS = str.maketrans("ol", "01")
# "Chat-sized": up to this many characters. Code: logs are written by programs, not read from screens.
_OCR_CODE_MAX = 2000
_STATUS_WORD = re.compile(_STATUS_TRIGGER)
# After it: a JSON body, a dash, or the status's own reason phrase.
_STATUS_AFTER = re.compile(
    r"\s*(?:\{|-\s|overloaded|internal|too many|bad gateway|service unavailable|gateway|unauthorized|forbidden"
    r"|errors\b|错误|에러|오류|エラー"
    r"|request too large|not found)"
)


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on one text: a cause of the four, or a known non-cause, or nothing."""

    cause: str | None
    confidence: float
    known: str | None = None
    runner_up: str | None = None
    evidence: str = ""
    # Which kind of the cause the text shows, for causes with kinds of their own advice (cause 4: "limit").
    variant: str | None = None

    @property
    def matched(self) -> bool:
        """Whether anything (a cause or a known non-cause) was recognised."""
        return self.cause is not None or self.known is not None

    def to_json(self) -> dict[str, Any]:
        """The CLI's --json object."""
        return {
            "cause": self.cause,
            "confidence": round(self.confidence, 3),
            "known": self.known,
            "runner_up": self.runner_up,
            "variant": self.variant,
            "evidence": self.evidence,
        }


NO_DIAGNOSIS = Diagnosis(cause=None, confidence=0.0, evidence="nothing recognised")


@dataclass
class _Score:
    signature: float = 0.0
    signature_text: str = ""
    # The text is essentially the best signature's error, pasted alone: it reports the error, it cannot talk about it.
    whole: bool = False
    also: str | None = None
    cues: list[tuple[str, float]] | None = None
    evidence: list[tuple[str, float]] | None = None

    def add_cue(self, cue: str, w: float) -> None:
        self.cues = self.cues or []
        if all(c != cue for c, _ in self.cues):
            self.cues.append((cue, w))

    def add_evidence(self, what: str, w: float) -> None:
        self.evidence = self.evidence or []
        if all(e != what for e, _ in self.evidence):
            self.evidence.append((what, w))


def _noisy_or(weights: list[float]) -> float:
    miss = 1.0
    for w in weights:
        miss *= 1.0 - w
    return 1.0 - miss


def _ratio_quality(ratio: float, min_ratio: float) -> float:
    """Map a fuzzy ratio to how much we trust it: typos and OCR slips cost little, loose matches a lot; nothing
    below `min_ratio`."""
    # The curve's shape is code: its points (95, 85) and slopes were fitted together with min_ratio and the
    # thresholds, so they are not separate knobs.
    if ratio >= 95:
        return 1.0
    if ratio >= 85:
        return 0.85 + (ratio - 85) * 0.015
    if ratio >= min_ratio:
        return 0.4 + (ratio - min_ratio) * (0.45 / (85 - min_ratio))
    return 0.0


class _Vocabulary:
    """A word list from the knowledge base, found as whole words, word sequences, or hanzi substrings."""

    def __init__(self, entries: tuple[str, ...], spaceless_min: int) -> None:
        self.single: set[str] = set()
        # Phrases and hanzi entries are tried only when their first word, or first two hanzi, is in the text.
        self.phrases: list[tuple[str, str]] = []
        # The same hanzi entries filed under their head, so a long Chinese text (thousands of heads) meets only
        # the entries whose head it has.
        self.cjk_by_head: dict[str, list[str]] = defaultdict(list)
        self.packed = [p for p in map(compact, entries) if len(p) >= spaceless_min and not _unspaced(p)]
        for entry in entries:
            if _unspaced(entry):
                self.cjk_by_head[_head(compact(entry))].append(compact(entry))
                continue
            words = _words(entry)
            if len(words) == 1:
                self.single.add(words[0])
            elif words:
                self.phrases.append((words[0], f" {' '.join(words)} "))

    def found(self, words: set[str], joined: str, packed: str, heads: set[str], spaceless: bool) -> bool:
        if not self.single.isdisjoint(words):
            return True
        if heads:
            for head in (heads & self.cjk_by_head.keys()) | ({""} & self.cjk_by_head.keys()):
                if any(c in packed for c in self.cjk_by_head[head]):
                    return True
        if spaceless and any(p in packed for p in self.packed):
            return True
        return any(first in words and p in joined for first, p in self.phrases)


@dataclass(frozen=True)
class _Context:
    claude: bool
    domain: bool
    trouble: bool
    question: bool
    foreign: bool
    elsewhere: bool
    terse: bool
    chatty: bool
    # A tip or a memory ("pro tip: handle overloaded_error with backoff"): talk about errors, not a report of one.
    advice: bool = False
    # The compact text of quoted spans: "what does 'Overloaded' mean?" asks about an error the user saw.
    quoted: tuple[str, ...] = ()


class Matcher:
    """Precomputed indexes over a knowledge base; `diagnose` is the hot path."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        if kb.calibration is None:
            raise ValueError("the knowledge base has no matcher calibration (load it with load_knowledge)")
        self.cal = kb.calibration
        self.entries: dict[str, Entry] = {e.id: e for e in iter_entries(kb)}
        self.order = {entry_id: n for n, entry_id in enumerate(self.entries)}
        self.signatures: list[Signature] = [s for e in iter_entries(kb) for s in e.signatures]
        self.signature_texts: list[str] = [s.compact for s in self.signatures]
        self.signature_weights: list[float] = [weight(s.compact) for s in self.signatures]
        self.grams: dict[str, set[int]] = defaultdict(set)
        for i, sig in enumerate(self.signature_texts):
            for j in range(max(1, len(sig) - _GRAM + 1)):
                self.grams[sig[j : j + _GRAM]].add(i)
        self._index_cues(kb)
        self._index_typos(kb)
        self.signature_grams = [max(1, len(t) - _GRAM + 1) for t in self.signature_texts]
        self.typo_tokens = [t for t in self.tokens if "_" in t]
        self.longest_token = max(map(len, self.typo_tokens), default=0)
        self._near: dict[str, str | None] = {}
        self.error_types = frozenset(t for e in iter_entries(kb) for t in e.error_types)
        self.patterns = [
            (_required_literal(p), re.compile(p), e.id, p, w) for e in iter_entries(kb) for p, w in e.patterns.items()
        ]
        self._read_vocabularies(kb)

    def _index_cues(self, kb: KnowledgeBase) -> None:
        # Word cues are found as " w1 w2 " in the space-joined words; a trailing * drops the closing space.
        self.word_cues: dict[str, list[tuple[str, frozenset[str], str, str, float]]] = defaultdict(list)
        self.prefix_cues: list[tuple[str, str, str, float]] = []
        self.cjk_cues: list[tuple[str, str, str, float]] = []
        self.compact_cues: list[tuple[str, str, str, float]] = []
        self.tokens: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
        self.status_codes: dict[int, list[tuple[str, float]]] = defaultdict(list)
        for entry in iter_entries(kb):
            for cue, w in entry.cues.items():
                self._index_cue(entry.id, cue, w)
            for token, w in (*entry.error_types.items(), *entry.exceptions.items()):
                self.tokens[token].append((entry.id, token, w))
            for code, w in entry.status_codes.items():
                self.status_codes[code].append((entry.id, w))
        # Negations ("no connection issues", "没有报错") are cues of no entry: matched, they cancel the cues they
        # contain, the way a longer cue of another entry does.
        for phrase in kb.vocabularies["negations"]:
            self._index_cue(_NEGATION, phrase, 0.0)
        self.first_words = frozenset(self.word_cues)
        self.cjk_cue_heads: dict[str, list[tuple[str, str, str, float]]] = defaultdict(list)
        for item in self.cjk_cues:
            self.cjk_cue_heads[_head(item[0])].append(item)

    def _index_typos(self, kb: KnowledgeBase) -> None:
        self.vocabulary = self._vocabulary_words(kb)
        self.longest_word = max(map(len, self.vocabulary), default=0)
        # Typo index: each vocabulary word under itself and its one-letter deletions (SymSpell), so a word one
        # edit away ("netwrok", "outtage", "conect") is found with a few dictionary lookups.
        self.deletions: dict[str, str] = {}
        for word in sorted(self.vocabulary, key=lambda w: (len(w), w)):
            if len(word) >= self.cal.typo_min_letters:
                for variant in (word, *_deletions(word)):
                    self.deletions.setdefault(variant, word)

    def _read_vocabularies(self, kb: KnowledgeBase) -> None:
        vocab = kb.vocabularies
        self.claude_words = _Vocabulary(vocab["claude_words"], self.cal.spaceless_min)
        self.domain_words = _Vocabulary(vocab["domain_words"], self.cal.spaceless_min)
        self.question_words = _Vocabulary(vocab["question_words"], self.cal.spaceless_min)
        self.trouble_words = _Vocabulary(vocab["trouble_words"], self.cal.spaceless_min)
        self.foreign_words = _Vocabulary(vocab["foreign_words"], self.cal.spaceless_min)
        self.elsewhere_words = _Vocabulary(vocab["elsewhere_words"], self.cal.spaceless_min)
        self.advice_words = _Vocabulary(vocab["advice_words"], self.cal.spaceless_min)
        self.chatty_words = _Vocabulary(vocab["chatty_words"], self.cal.spaceless_min)
        self.greeting_words = _Vocabulary(vocab["greeting_words"], self.cal.spaceless_min)
        self.status_questions = _Vocabulary(vocab["status_questions"], self.cal.spaceless_min)
        self.fillers = frozenset(vocab["filler_words"])
        self.variant_words = {
            entry.id: [(v.id, _Vocabulary(v.words, self.cal.spaceless_min)) for v in entry.variants]
            for entry in kb.causes
            if entry.variants
        }

    def _vocabulary_words(self, kb: KnowledgeBase) -> frozenset[str]:
        words: set[str] = set()
        for entry in iter_entries(kb):
            for cue in entry.cues:
                words.update(w for w in _words(cue.rstrip("*")) if w.isalpha())
        for name in ("claude_words", "domain_words", "trouble_words"):
            for phrase in kb.vocabularies[name]:
                words.update(w for w in _words(phrase) if w.isalpha())
        return frozenset(words)

    def _corrected(self, words: list[str]) -> list[str] | None:
        """The word sequence with words one edit away from the vocabulary put right, or None if none were."""
        out = list(words)
        changed = False
        for i, word in enumerate(words[:_TYPO_LIMIT]):
            # A word two edits longer than the longest we know is no typo of it, and its deletions cost its square.
            too_short = len(word) < self.cal.typo_min_letters
            if too_short or len(word) > self.longest_word + 2 or word in self.vocabulary or not word.isalpha():
                continue
            fix = self.deletions.get(word) or next(
                (self.deletions[d] for d in _deletions(word) if d in self.deletions), None
            )
            # Deletions on both sides meet at two edits apart: fine for long words, but "than" is not "hang".
            if fix is not None and (
                len(word) >= self.cal.typo_two_edits or DamerauLevenshtein.distance(word, fix, score_cutoff=1) <= 1
            ):
                out[i] = fix
                changed = True
        return out if changed else None

    def _index_cue(self, entry_id: str, cue: str, w: float) -> None:
        prefix = cue.endswith("*")
        body = cue.rstrip("*").strip()
        if _unspaced(body):
            self.cjk_cues.append((compact(body), entry_id, cue, w))
            return
        words = tuple(_words(body))
        if not words:
            return
        if len(words) == 1 and prefix:
            self.prefix_cues.append((words[0], entry_id, cue, w))
        else:
            needle = " " + " ".join(words) + ("" if prefix else " ")
            required = frozenset(words[:-1] if prefix else words)
            self.word_cues[words[0]].append((needle, required, entry_id, cue, w))
        packed = compact(body)
        if len(packed) >= self.cal.spaceless_min:
            # Spaceless text (OCR) can only be reached through the compact form.
            self.compact_cues.append((packed, entry_id, cue, w))

    # --- the hot path --------------------------------------------------------------------------------

    def _lookup_words(self, words: list[str]) -> list[str]:
        """The words, then (after a "|" that no phrase spans) the OCR-folded sequence ("wi11 exceed the 1ength
        lirnit" -> "will exceed the length limit") and the parts of joined words ("claude's", "nginx/1.18.0")."""
        out = list(words)
        if len(words) > _REPAIR_MAX_WORDS:
            # Long pastes are logs written by programs: no OCR slips or typos to repair, and it costs per word.
            parts = _parts(words)
            return [*out, "|", *parts] if parts else out
        folded = [_ocr_fold(w, self.vocabulary) for w in words]
        if folded != words:
            out += ["|", *folded]
        if self.fillers.intersection(folded):
            # "Claude is completely down", "the usage is totally gone": cues are written without the intensifiers.
            out += ["|", *(w for w in folded if w not in self.fillers)]
        corrected = self._corrected(folded)
        if corrected is not None:
            out += ["|", *corrected]
        parts = _parts(folded)
        if parts:
            out += ["|", *parts]
        return out

    def diagnose(self, text: str, *, threshold: float | None = None, image: bool = False) -> Diagnosis:
        """Diagnose `text`; below `threshold` (default: the knowledge base's 'asked' level) nothing is claimed.
        `image`: the text was read from a screenshot, chrome and all."""
        if threshold is None:
            threshold = self.kb.thresholds.asked
        cleaned = clean(head_and_tail(text))
        packed = compact(cleaned)
        if not packed:
            return NO_DIAGNOSIS
        scores: dict[str, _Score] = defaultdict(_Score)
        # "是不是宕机" asks "is it down?": without folding, the negation cue "不是宕机" ("not down") would fire.
        packed = _A_NOT_A.sub(r"\1否", packed) if "不" in packed else packed
        words = _words(cleaned)
        room = self.cal.spaceless_ratio * (cleaned.count(" ") + 1)
        # Counting letters walks the whole text: skip it when there are too many spaces for it to matter.
        spaceless = len(cleaned) >= room and len(_LATIN_LETTER.findall(cleaned)) >= max(
            room, self.cal.spaceless_letters
        )
        lookup = self._lookup_words(words)
        self._match_signatures(packed, scores)
        heads = _cjk_heads(packed) if has_cjk(packed) else set()
        self._match_cues(cleaned, packed, lookup, spaceless, heads, scores)
        self._match_evidence(cleaned, lookup, scores)
        self._match_patterns(packed, scores)
        asks = cleaned.rstrip().endswith(("?", "？"))
        negated = scores[_NEGATION].cues if _NEGATION in scores else None
        voiced = [
            cue for e, s in scores.items() if e != _NEGATION for cue, w in s.cues or () if w >= self.cal.voiced_cue
        ]
        ctx = self._context(packed, lookup, len(words), spaceless, asks, heads, negated, voiced)
        if asks or ctx.question:
            ctx = replace(ctx, quoted=_quoted(cleaned))
        if not ctx.advice and _TALK_TITLE.match(cleaned):
            ctx = replace(ctx, advice=True)
        if image:
            # A screenshot shows the error on its own screen, whose sidebar lists the user's chat titles
            # ("英语面试准备"): they are not a tip about errors.
            ctx = replace(ctx, advice=False)
        d = self._decide(scores, ctx, threshold, text)
        if d.cause in self.variant_words:
            d = replace(d, variant=self._variant(d.cause, lookup, packed, heads, spaceless))
        return d

    def describes_trouble(self, text: str) -> bool:
        """Whether a text nothing was recognised in still talks about Claude or trouble with it ("claude keeps
        cutting off mid answer"): worth a few questions rather than "not recognised"."""
        words, packed, heads = self._vocabulary_view(text)
        joined = f" {' '.join(words)} "
        return any(
            v.found(set(words), joined, packed, heads, False)
            for v in (self.claude_words, self.trouble_words, self.domain_words)
        )

    def is_greeting(self, text: str) -> bool:
        """Whether a short text is a greeting or a bare request for help ("hi", "help", "你好")."""
        return self._short_and_found(text, self.greeting_words, self.cal.greeting_words)

    def asks_status(self, text: str) -> bool:
        """Whether a short text asks if Claude is down right now ("is claude down?", "claude 是不是挂了")."""
        return self._short_and_found(text, self.status_questions, self.cal.status_question_words)

    def _short_and_found(self, text: str, vocabulary: _Vocabulary, most_words: int) -> bool:
        """Whether a text of at most `most_words` words (a hanzi counts 1/2.5) has an entry of `vocabulary`."""
        words, packed, heads = self._vocabulary_view(text)
        hanzi = sum(len(run) for run in _CJK_RUN.findall(packed))
        if len(words) + hanzi / 2.5 > most_words:
            return False
        return vocabulary.found(set(words), f" {' '.join(words)} ", packed, heads, False)

    def _vocabulary_view(self, text: str) -> tuple[list[str], str, set[str]]:
        cleaned = clean(text[:_VIEW_CHARS])
        packed = compact(cleaned)
        return _words(cleaned), packed, _cjk_heads(packed) if has_cjk(packed) else set()

    def _variant(self, cause: str, words: list[str], packed: str, heads: set[str], spaceless: bool) -> str | None:
        """The first of the cause's kinds whose words the text has ("usage limit": a used-up plan), or None."""
        present, joined = set(words), f" {' '.join(words)} "
        for variant_id, vocabulary in self.variant_words[cause]:
            if vocabulary.found(present, joined, packed, heads, spaceless):
                return variant_id
        return None

    def _candidates(self, packed: str) -> list[tuple[int, str]]:
        """Signatures sharing enough n-grams with the text, best first, each with the stretch of text to score."""
        n = len(packed)
        # Long texts are sampled at every other position: a matching signature still shares half its n-grams.
        step = 2 if n > _PREFILTER_FROM else 1
        grams = {packed[i : i + _GRAM]: i for i in range(0, n - _GRAM + 1, step)} if n >= _GRAM else {packed: 0}
        hits: dict[int, list[int]] = defaultdict(list)
        for gram in grams.keys() & self.grams.keys():
            pos = grams[gram]
            for i in self.grams[gram]:
                hits[i].append(pos)
        # Scoring every signature is what costs: only the few sharing the most n-grams are scored.
        # Ties are broken by position in the knowledge base: set order changes with each process's string hashing.
        ranked = sorted(hits.items(), key=lambda kv: (-len(kv[1]) / self.signature_grams[kv[0]], kv[0]))
        out = []
        for i, positions in ranked[:_MAX_CANDIDATES]:
            if len(positions) < min(2 if step == 1 else 1, self.signature_grams[i]):
                continue
            if n <= _PREFILTER_FROM:
                out.append((i, packed))
                continue
            length = len(self.signature_texts[i])
            positions.sort()
            middle = positions[len(positions) // 2]
            out.append((i, packed[max(0, middle - 2 * length) : middle + 2 * length]))
        return out

    def _match_signatures(self, packed: str, scores: dict[str, _Score]) -> None:
        text_weight = weight(packed)
        for i, stretch in self._candidates(packed):
            sig_text = self.signature_texts[i]
            ratio = fuzz.partial_ratio(sig_text, stretch, score_cutoff=self.cal.min_ratio)
            if not ratio:
                continue
            sig = self.signatures[i]
            sig_weight = self.signature_weights[i]
            if sig_weight < self.cal.short_signature and ratio < self.cal.short_min_ratio:
                continue
            if len(packed) >= len(sig_text):
                matched = sig_weight
                coverage = 1.0
            else:
                found = self._truncated(packed, sig_text, ratio, text_weight)
                if found is None:
                    continue
                ratio, matched, coverage = found
            strength = min(1.0, matched / self.cal.full_strength)
            whole = coverage >= 0.5 and matched >= 0.7 * text_weight
            if whole:
                # The text is essentially this error, whole or cut short: that is convincing even when short.
                strength = max(strength, 0.9)
            # A copy cut short scores a little under a whole one, so that when two errors open alike
            # ("Claude is currently experiencing ..."), the one the text holds in full wins.
            score = _ratio_quality(ratio, self.cal.min_ratio) * strength * (0.9 + 0.1 * coverage)
            slot = scores[sig.entry]
            if score > slot.signature:
                slot.signature, slot.signature_text, slot.also, slot.whole = score, sig.text, sig.also, whole

    def _truncated(
        self, packed: str, sig_text: str, ratio: float, text_weight: float
    ) -> tuple[float, float, float] | None:
        """A text shorter than the signature: (ratio, matched weight, coverage) if it holds a copy cut short."""
        best: tuple[float, float, float] | None = None
        # The whole text is the error cut short if it lines up with the signature's start; a piece from the
        # middle counts only when it is long enough to be unmistakable.
        al = fuzz.partial_ratio_alignment(packed, sig_text)
        if al is not None and (
            al.dest_start <= max(3, len(sig_text) // 10)
            or (text_weight >= self.cal.middle_min_weight and ratio >= self.cal.middle_min_ratio)
        ):
            # The copy must run on as the signature does, not just share its opening words.
            r = min(ratio, fuzz.ratio(packed, sig_text[al.dest_start : al.dest_start + len(packed)]))
            if r >= self.cal.truncated_min_ratio:
                best = (r, text_weight, len(packed) / len(sig_text))
        # Or words around a copy cut short: "I got Your message will exceed the length limit, any workaround?"
        head = sig_text[: int(len(packed) * 0.8)]
        if weight(head) >= self.cal.middle_min_weight:
            r = fuzz.partial_ratio(head, packed, score_cutoff=self.cal.middle_min_ratio)
            if r and (best is None or weight(head) * r > best[1] * best[0]):
                best = (r, weight(head), len(head) / len(sig_text))
        return best

    def _match_cues(
        self,
        cleaned: str,
        packed: str,
        words: list[str],
        spaceless: bool,
        heads: set[str],
        scores: dict[str, _Score],
    ) -> None:
        seen = set(words)
        present = self.first_words.intersection(seen)
        if present:
            joined = f" {' '.join(words)} "
            for word in present:
                for needle, required, entry_id, cue, w in self.word_cues[word]:
                    # The set test is cheap and rules out most phrases before scanning the text.
                    if required <= seen and needle in joined:
                        scores[entry_id].add_cue(cue, w)
        for stem, entry_id, cue, w in self.prefix_cues:
            if stem in cleaned and any(word.startswith(stem) for word in words):
                scores[entry_id].add_cue(cue, w)
        if heads:
            for head in (heads | {""}) & self.cjk_cue_heads.keys():
                for cue_text, entry_id, cue, w in self.cjk_cue_heads[head]:
                    if cue_text in packed:
                        scores[entry_id].add_cue(cue, w)
        if spaceless:
            # Each of the many compact cues would scan the whole text: only those whose opening four characters
            # occur in it are looked for.
            grams = {packed[i : i + _GRAM] for i in range(len(packed) - _GRAM + 1)}
            for cue_text, entry_id, cue, w in self.compact_cues:
                if cue_text[:_GRAM] in grams and cue_text in packed:
                    scores[entry_id].add_cue(cue, w)

    def _match_evidence(self, cleaned: str, words: list[str], scores: dict[str, _Score]) -> None:
        present = set(words)
        for word in self.tokens.keys() & present:
            for entry_id, token, w in self.tokens[word]:
                scores[entry_id].add_evidence(token, w)
        # A fuzzy search per distinct unknown token: a paste of thousands of made-up tokens is searched for the
        # first few only.
        unknown = list(dict.fromkeys(_UNDERSCORED.findall(cleaned)))
        for word in [w for w in unknown if w not in self.tokens][:_NEAR_TOKENS]:
            if _MIXED.match(word):
                # OCR's digits for letters: "err_c0nnecti0n_reset".
                word = word.translate(_LEET)
            if 8 <= len(word) <= self.longest_token + 4:
                near = self._near_token(word)
                if near is not None:
                    for entry_id, token, w in self.tokens[near]:
                        scores[entry_id].add_evidence(token, w * 0.9)
        for code in _status_codes(cleaned):
            for entry_id, w in self.status_codes.get(code, ()):
                scores[entry_id].add_evidence(f"HTTP {code}", w)

    def _near_token(self, word: str) -> str | None:
        """The error-type token that `word` is cut short from ("overloaded_") or misspells ("overlaoded_error").
        Remembered per word: logs repeat their identifiers, and a fuzzy search over every token is the cost."""
        if word in self._near:
            return self._near[word]
        if len(self._near) > _NEAR_CACHE:
            self._near.clear()
        near = next((t for t in self.typo_tokens if t.startswith(word)), None)
        if near is None:
            hit = process.extractOne(word, self.typo_tokens, scorer=fuzz.ratio, score_cutoff=self.cal.token_typo_ratio)
            near = hit[0] if hit else None
        self._near[word] = near
        return near

    def _anthropic_evidence(self, s: _Score) -> bool:
        return any(what in self.error_types and w >= self.cal.specific_status for what, w in s.evidence or ())

    def _evidence_factor(self, what: str, w: float, ctx: _Context, cue_factor: float, asking: bool) -> float:
        """Evidence stands on its own, except a generic HTTP status (any server's 500 or 429) where nothing says
        Claude, and anything at all in a question that reports no trouble."""
        if asking:
            return cue_factor
        if what.startswith("HTTP ") and w < self.cal.specific_status and not ctx.claude:
            return cue_factor
        return 1.0

    def _match_patterns(self, packed: str, scores: dict[str, _Score]) -> None:
        for needle, pattern, entry_id, source, w in self.patterns:
            # A substring test first: a regex opening with a class or group is tried at every position of the text.
            if needle in packed and pattern.search(packed):
                scores[entry_id].add_evidence(f"pattern {source}", w)

    def _context(
        self,
        packed: str,
        words: list[str],
        word_count: int,
        spaceless: bool,
        asks: bool,
        heads: set[str],
        negated: list[tuple[str, float]] | None = None,
        voiced: list[str] | None = None,
    ) -> _Context:
        present = set(words)
        joined = f" {' '.join(words)} "
        chatty = self.chatty_words.found(present, joined, packed, heads, False)
        if chatty and voiced:
            # "We are currently investigating" is the status page's voice, not the user's: the words of a strong
            # cue do not make the text chat.
            v_joined, v_packed = _without(joined, packed, voiced)
            chatty = self.chatty_words.found(set(v_joined.split()), v_joined, v_packed, heads, False)
        hanzi = sum(len(run) for run in _CJK_RUN.findall(packed)) if heads else 0
        size = word_count + hanzi / 2.5
        trouble = self.trouble_words.found(present, joined, packed, heads, spaceless)
        if trouble and negated:
            # "no errors at all" reports no trouble: look again without the negated phrases.
            joined, packed = _without(joined, packed, [phrase for phrase, _ in negated])
            present = set(joined.split())
            trouble = self.trouble_words.found(present, joined, packed, heads, spaceless)
        return _Context(
            claude=self.claude_words.found(present, joined, packed, heads, spaceless),
            domain=self.domain_words.found(present, joined, packed, heads, spaceless),
            trouble=trouble,
            question=self.question_words.found(present, joined, packed, heads, False) or asks,
            foreign=self.foreign_words.found(present, joined, packed, heads, spaceless),
            elsewhere=self.elsewhere_words.found(present, joined, packed, heads, spaceless),
            advice=self.advice_words.found(present, joined, packed, heads, False),
            # Run-together OCR text is a screenshot of the error itself, however it reads.
            terse=spaceless or (not chatty and size <= self.kb.terse_words),
            chatty=chatty,
        )

    def _cue_factor(self, ctx: _Context) -> float:
        f = self.kb.context_factors
        factor = self._plain_factor(ctx)
        if ctx.question and not ctx.trouble:
            factor = min(factor, f.question)
        if ctx.advice:
            factor = min(factor, f.advice)
        if ctx.claude and ctx.foreign:
            factor *= f.foreign_and_claude
        return factor

    def _plain_factor(self, ctx: _Context) -> float:
        f = self.kb.context_factors
        if ctx.claude or ctx.domain:
            if ctx.trouble:
                return f.claude_and_trouble if ctx.claude else f.domain_and_trouble
            if ctx.question:
                return f.question
            return f.claude if ctx.claude else f.domain
        if ctx.terse:
            return f.terse
        if not ctx.chatty:
            return max(f.impersonal, f.trouble if ctx.trouble else 0.0)
        return f.trouble if ctx.trouble else f.neither

    def _talk(self, text: str, best: float) -> float | None:
        """The talk model's probability when it holds a strict-level diagnosis back, else None. Only a diagnosis
        sure enough for a group auto-answer is worth the model's time."""
        model = self.kb.talk
        if model is None or best < self.kb.thresholds.strict:
            return None
        p = model.probability(text)
        return p if p >= model.gate else None

    def _decide(self, scores: dict[str, _Score], ctx: _Context, threshold: float, text: str) -> Diagnosis:
        totals: dict[str, float] = {}
        cue_factor = self._cue_factor(ctx)
        # The user's own surroundings (home broadband, the subway) say "something else" only where Claude isn't
        # named: "Claude times out on the campus network" is ours.
        foreign = (ctx.foreign or ctx.elsewhere) and not ctx.claude
        _drop_explained_cues(scores)
        scores.pop(_NEGATION, None)
        # A question with no trouble word asks about a thing ("what does HTTP 529 mean?") rather than reporting it.
        asking = (ctx.question and not ctx.trouble) or ctx.advice
        for entry_id, s in scores.items():
            entry_factor, entry_asking = cue_factor, asking
            if asking and ctx.quoted and _quotes_error(s, ctx.quoted, self.cal.quoted_cue):
                # Asking what a quoted error means is reporting it: the user saw it.
                entry_asking = False
                entry_factor = max(cue_factor, self.kb.context_factors.quoted)
            ev = _noisy_or(
                [w * self._evidence_factor(what, w, ctx, entry_factor, entry_asking) for what, w in s.evidence or ()]
            )
            factor = entry_factor if entry_asking or (s.signature < 0.5 and ev < 0.5) else 1.0
            cue = _combine_cues([w * factor for _, w in _outermost(s.cues or [])])
            total = _noisy_or([s.signature, cue, ev])
            # Another program's error is discounted, unless a strong signature or one of Anthropic's own error
            # types ("overloaded_error" in an API body relayed by some framework) says it is Claude's.
            if foreign and s.signature < 0.9 and not self._anthropic_evidence(s):
                total *= self.kb.context_factors.foreign
            totals[entry_id] = total
        if not totals:
            return NO_DIAGNOSIS
        # Equal scores go to the entry first in the knowledge base, whatever order the evidence arrived in.
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1], self.order[kv[0]]))
        best_id, score = ranked[0]
        entry, slot = self.entries[best_id], scores[best_id]
        talk = self._talk(text, score) if entry.kind == "cause" and not slot.whole else None
        best = score
        if talk is not None:
            # Talk about an error (docs quoting it, a PR title, news) is never sure enough for a reply nobody asked
            # for: held just under the strict level, it is still answered when somebody asks.
            best = min(score, math.nextafter(self.kb.thresholds.strict, 0.0))
        if best < threshold:
            held = f"; {_talk_note(talk)}" if talk is not None else ""
            return Diagnosis(cause=None, confidence=best, evidence=f"nothing recognised with confidence{held}")
        runner_up = slot.also if slot.signature >= max(slot_cue(slot), 0.5) else None
        if runner_up is None:
            for other_id, other in ranked[1:]:
                if (
                    self.entries[other_id].kind == "cause"
                    and other >= threshold
                    and other >= score * self.kb.thresholds.runner_up_ratio
                ):
                    runner_up = other_id
                    break
        if runner_up == best_id:
            runner_up = None
        evidence = _describe(slot) + (f"; {_talk_note(talk)}" if talk is not None else "")
        if entry.kind == "cause":
            return Diagnosis(cause=best_id, confidence=best, runner_up=runner_up, evidence=evidence)
        return Diagnosis(cause=None, confidence=best, known=best_id, runner_up=runner_up, evidence=evidence)


# A commit subject, pull-request title or feature-request heading ("fix(api): retry on 529", "feat: ...",
# "[Feature Request] ..."): it talks about handling an error, not about hitting one. A "[BUG]" title is a report.
_TALK_TITLE = re.compile(
    r"\W*(?:(?:fix|feat|feature|chore|docs?|refactor|perf|test|build|ci|revert)(?:\([^)\n]{0,40}\))?!?:"
    r"|\[(?:feature|feature request|enhancement|proposal|rfc|docs?|infrastructure|improvement)\])"
)
# Enough of a text to tell whether it is about Claude at all. Code: it bounds the work per message.
_VIEW_CHARS = 4000
# A quoted span: double, curly or corner quotes, backticks, or single quotes that are not apostrophes.
_QUOTED = re.compile(
    r"\"([^\"\n]{3,120})\"|`([^`\n]{3,120})`|「([^」\n]{2,120})」|『([^』\n]{2,120})』"
    r"|(?<![a-z0-9])'([^'\n]{3,120})'(?![a-z0-9])"
)
# Longer texts are not chat, and their quotes are not an error the user saw. Code: it bounds the work per message.
_QUOTES_MAX = 2000


def _talk_note(p: float | None) -> str:
    return f"reads like talk about an error ({p:.2f}), so not sure enough for a reply nobody asked for"


def _quoted(cleaned: str) -> tuple[str, ...]:
    """The compact text of each quoted span of a chat-sized text."""
    if len(cleaned) > _QUOTES_MAX:
        return ()
    return tuple(compact("".join(m.groups(""))) for m in _QUOTED.finditer(cleaned))


def _quotes_error(s: _Score, quoted: tuple[str, ...], strong_cue: float) -> bool:
    """Whether a cue or an error type of this entry at least `strong_cue` strong stands inside a quoted span."""
    strong = [compact(c.rstrip("*")) for c, w in s.cues or () if w >= strong_cue]
    strong += [
        compact(what) for what, w in s.evidence or () if w >= strong_cue and not what.startswith(("HTTP ", "pattern "))
    ]
    return any(c and c in q for c in strong for q in quoted)


def _without(joined: str, packed: str, phrases: list[str]) -> tuple[str, str]:
    """The text (as joined words and packed) with the given cue phrases cut out, the longest first."""
    # Longest first, whatever order the phrases came in (a set's, which varies from run to run): cutting
    # "investigating" first would leave "we are currently" of "we are currently investigating" behind.
    for phrase in sorted(phrases, key=lambda p: (-len(p), p)):
        body = phrase.rstrip("*")
        joined = joined.replace(f" {' '.join(_words(body))} ", " | ")
        packed = packed.replace(compact(body), "|")
    return joined, packed


def _drop_explained_cues(scores: dict[str, _Score]) -> None:
    """A cue inside a longer cue matched for another entry is explained by it: "not your usage limit" (capacity)
    is not a usage limit (context), "not an outage" (capacity) not an outage (service)."""
    matched = [(entry_id, cue.rstrip("*")) for entry_id, s in scores.items() for cue, _ in s.cues or ()]
    for entry_id, s in scores.items():
        if s.cues:
            s.cues = [
                (cue, w)
                for cue, w in s.cues
                if not any(
                    other != entry_id and cue.rstrip("*") in body and cue.rstrip("*") != body for other, body in matched
                )
            ]


def _combine_cues(weights: list[float]) -> float:
    """The strongest cue counts in full and the others at half: several weak, generic words ("capacity",
    "peak time") must not add up to an error."""
    if not weights:
        return 0.0
    ordered = sorted(weights, reverse=True)
    return _noisy_or([ordered[0], *(w / 2 for w in ordered[1:])])


def _outermost(cues: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Drop cues contained in another matched cue ("internal server error" already says "server error"), and
    count a cue written twice ("usage limit", "usage limit*") once."""
    bodies = [c.rstrip("*") for c, _ in cues]
    out: dict[str, tuple[str, float]] = {}
    for cw, b in zip(cues, bodies, strict=True):
        if not any(b != o and b in o for o in bodies) and (b not in out or cw[1] > out[b][1]):
            out[b] = cw
    return list(out.values())


def slot_cue(slot: _Score) -> float:
    return _noisy_or([w for _, w in slot.cues or ()])


def _describe(slot: _Score) -> str:
    parts = []
    if slot.signature > 0:
        shown = slot.signature_text if len(slot.signature_text) <= 80 else slot.signature_text[:77] + "..."
        parts.append(f'matches "{shown}" ({slot.signature:.0%})')
    if slot.evidence:
        parts.append("evidence: " + ", ".join(sorted(e for e, _ in slot.evidence)))
    if slot.cues:
        strongest = sorted(slot.cues, key=lambda cw: (-cw[1], cw[0]))[:6]
        parts.append("cues: " + ", ".join(c.rstrip("*") for c, _ in strongest))
    return "; ".join(parts)


_MATCHERS: dict[str, Matcher] = {}


def get_matcher(kb: KnowledgeBase | None = None, *, directory: str | Path | None = None) -> Matcher:
    """A Matcher for the knowledge base (default: the one in `directory`, else the one shipped with the package),
    built once and reused."""
    if kb is None:
        from bot.core.knowledge import default_knowledge_dir, load_knowledge

        key = str(Path(directory).resolve() if directory is not None else default_knowledge_dir().resolve())
        if key not in _MATCHERS:
            _MATCHERS[key] = Matcher(load_knowledge(key))
        return _MATCHERS[key]
    key = f"id:{id(kb)}"
    if key not in _MATCHERS:
        _MATCHERS[key] = Matcher(kb)
    return _MATCHERS[key]


def diagnose(text: str, *, kb: KnowledgeBase | None = None, strict: bool = False) -> Diagnosis:
    """Diagnose `text` at the 'asked' confidence level, or the 'strict' one for replies nobody asked for."""
    matcher = get_matcher(kb)
    thresholds = matcher.kb.thresholds
    return matcher.diagnose(text, threshold=thresholds.strict if strict else thresholds.asked)
