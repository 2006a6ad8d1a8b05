"""Diagnose a text: which of the four causes (or which known non-cause) it shows, how sure, and why."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz

from bot.knowledge import Entry, KnowledgeBase, Signature, iter_entries
from bot.normalize import clean, compact, has_cjk, weight

# Longer input is cut: a 64 KB log is the largest realistic paste, and the cap bounds the work per message.
MAX_INPUT_CHARS = 65_536
# Information (in letters; a hanzi counts 2.5) at which a signature match is fully convincing.
_FULL_STRENGTH = 30.0
# Texts longer than this (compact chars) go through the n-gram prefilter instead of scoring every signature.
_PREFILTER_FROM = 400
_GRAM = 4
_MAX_CANDIDATES = 6
_MIN_RATIO = 72.0
# Cue-only scores without anything that says "an error about Claude" are discounted by this factor.
_NO_CONTEXT_FACTOR = 0.6
_WORD = re.compile(r"[a-z0-9_]+(?:['./-][a-z0-9_]+)*")
_STATUS = re.compile(
    r"(?:error|status|code|http|api|错误|状态码|返回)[^0-9a-z]{0,12}([1-5][0-9]{2})(?![0-9])"
    r"|(?<![0-9.])([1-5][0-9]{2})(?=\s*(?:\{|-\s|overloaded|internal|too many|bad gateway|service unavailable"
    r"|gateway|unauthorized|forbidden|request too large|not found))"
    r"|^\s*([1-5][0-9]{2})\s*$"
)


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on one text: a cause of the four, or a known non-cause, or nothing."""

    cause: str | None
    confidence: float
    known: str | None = None
    runner_up: str | None = None
    evidence: str = ""

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
            "evidence": self.evidence,
        }


NO_DIAGNOSIS = Diagnosis(cause=None, confidence=0.0, evidence="nothing recognised")


@dataclass
class _Score:
    signature: float = 0.0
    signature_text: str = ""
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


def _ratio_quality(ratio: float) -> float:
    """Map a fuzzy ratio to how much we trust it: typos and OCR slips cost little, loose matches a lot."""
    if ratio >= 95:
        return 1.0
    if ratio >= 85:
        return 0.85 + (ratio - 85) * 0.015
    if ratio >= _MIN_RATIO:
        return 0.4 + (ratio - _MIN_RATIO) * (0.45 / (85 - _MIN_RATIO))
    return 0.0


class Matcher:
    """Precomputed indexes over a knowledge base; `diagnose` is the hot path."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.entries: dict[str, Entry] = {e.id: e for e in iter_entries(kb)}
        self.signatures: list[Signature] = [s for e in iter_entries(kb) for s in e.signatures]
        self.signature_texts: list[str] = [s.compact for s in self.signatures]
        self.signature_weights: list[float] = [weight(s.compact) for s in self.signatures]
        self.grams: dict[str, set[int]] = defaultdict(set)
        for i, sig in enumerate(self.signature_texts):
            for j in range(max(1, len(sig) - _GRAM + 1)):
                self.grams[sig[j : j + _GRAM]].add(i)
        # Word cues are found as " w1 w2 " in the space-joined words; a trailing * drops the closing space.
        self.word_cues: dict[str, list[tuple[str, str, str, float]]] = defaultdict(list)
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
        self.first_words = frozenset(self.word_cues)
        self.signature_grams = [max(1, len(t) - _GRAM + 1) for t in self.signature_texts]
        self.context_words: set[str] = set()
        self.context_phrases: list[tuple[str, ...]] = []
        self.context_cjk: list[str] = []
        for word in kb.error_context:
            if has_cjk(word):
                self.context_cjk.append(compact(word))
            else:
                words = tuple(_WORD.findall(word))
                if len(words) == 1:
                    self.context_words.add(words[0])
                elif words:
                    self.context_phrases.append(words)

    def _index_cue(self, entry_id: str, cue: str, w: float) -> None:
        prefix = cue.endswith("*")
        body = cue.rstrip("*").strip()
        if has_cjk(body):
            self.cjk_cues.append((compact(body), entry_id, cue, w))
            return
        words = tuple(_WORD.findall(body))
        if not words:
            return
        if len(words) == 1 and prefix:
            self.prefix_cues.append((words[0], entry_id, cue, w))
        else:
            needle = " " + " ".join(words) + ("" if prefix else " ")
            self.word_cues[words[0]].append((needle, entry_id, cue, w))
        packed = compact(body)
        if len(words) > 1 and len(packed) >= 9:
            # Spaceless text (OCR) can only be reached through the compact form.
            self.compact_cues.append((packed, entry_id, cue, w))

    # --- the hot path --------------------------------------------------------------------------------

    def diagnose(self, text: str, *, threshold: float | None = None) -> Diagnosis:
        """Diagnose `text`; below `threshold` (default: the knowledge base's 'asked' level) nothing is claimed."""
        if threshold is None:
            threshold = self.kb.thresholds.asked
        cleaned = clean(text[:MAX_INPUT_CHARS])
        packed = compact(cleaned)
        if not packed:
            return NO_DIAGNOSIS
        scores: dict[str, _Score] = defaultdict(_Score)
        words = _WORD.findall(cleaned)
        self._match_signatures(packed, scores)
        self._match_cues(cleaned, packed, words, scores)
        self._match_evidence(cleaned, words, scores)
        return self._decide(scores, self._has_context(packed, words), threshold)

    def _candidates(self, packed: str) -> list[tuple[int, str]]:
        """Signatures sharing enough n-grams with the text, best first, each with the stretch of text to score."""
        n = len(packed)
        grams = {packed[i : i + _GRAM]: i for i in range(n - _GRAM + 1)} if n >= _GRAM else {packed: 0}
        hits: dict[int, list[int]] = defaultdict(list)
        for gram in grams.keys() & self.grams.keys():
            pos = grams[gram]
            for i in self.grams[gram]:
                hits[i].append(pos)
        # Scoring every signature is what costs: only the few sharing the most n-grams are scored.
        ranked = sorted(hits.items(), key=lambda kv: len(kv[1]) / self.signature_grams[kv[0]], reverse=True)
        out = []
        for i, positions in ranked[:_MAX_CANDIDATES]:
            if len(positions) < min(2, self.signature_grams[i]):
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
            ratio = fuzz.partial_ratio(sig_text, stretch, score_cutoff=_MIN_RATIO)
            if not ratio:
                continue
            sig = self.signatures[i]
            sig_weight = self.signature_weights[i]
            if len(packed) >= len(sig_text):
                matched = sig_weight
                coverage = 1.0
            else:
                # A text shorter than the signature is a truncated copy only if it lines up with its start.
                al = fuzz.partial_ratio_alignment(packed, sig_text)
                if al is None or al.dest_start > max(3, len(sig_text) // 10):
                    continue
                matched = text_weight
                coverage = len(packed) / len(sig_text)
            strength = min(1.0, matched / _FULL_STRENGTH)
            if coverage >= 0.5 and matched >= 0.7 * text_weight:
                # The text is essentially this error, whole or cut short: that is convincing even when short.
                strength = max(strength, 0.9)
            score = _ratio_quality(ratio) * strength
            slot = scores[sig.entry]
            if score > slot.signature:
                slot.signature, slot.signature_text, slot.also = score, sig.text, sig.also

    def _match_cues(self, cleaned: str, packed: str, words: list[str], scores: dict[str, _Score]) -> None:
        present = self.first_words.intersection(words)
        if present:
            joined = f" {' '.join(words)} "
            for word in present:
                for needle, entry_id, cue, w in self.word_cues[word]:
                    if needle in joined:
                        scores[entry_id].add_cue(cue, w)
        for stem, entry_id, cue, w in self.prefix_cues:
            if stem in cleaned and any(word.startswith(stem) for word in words):
                scores[entry_id].add_cue(cue, w)
        if has_cjk(packed):
            for cue_text, entry_id, cue, w in self.cjk_cues:
                if cue_text in packed:
                    scores[entry_id].add_cue(cue, w)
        if words and max(map(len, words)) >= 25:
            for cue_text, entry_id, cue, w in self.compact_cues:
                if cue_text in packed:
                    scores[entry_id].add_cue(cue, w)

    def _match_evidence(self, cleaned: str, words: list[str], scores: dict[str, _Score]) -> None:
        for word in self.tokens.keys() & set(words):
            for entry_id, token, w in self.tokens[word]:
                scores[entry_id].add_evidence(token, w)
        for m in _STATUS.finditer(cleaned):
            code = int(m.group(1) or m.group(2) or m.group(3))
            for entry_id, w in self.status_codes.get(code, ()):
                scores[entry_id].add_evidence(f"HTTP {code}", w)

    def _has_context(self, packed: str, words: list[str]) -> bool:
        if any(w in self.context_words for w in words):
            return True
        if self.context_cjk and has_cjk(packed) and any(c in packed for c in self.context_cjk):
            return True
        joined = " ".join(words)
        return any(" ".join(p) in joined for p in self.context_phrases)

    def _decide(self, scores: dict[str, _Score], context: bool, threshold: float) -> Diagnosis:
        totals: dict[str, float] = {}
        for entry_id, s in scores.items():
            cue = _noisy_or([w for _, w in s.cues or ()])
            ev = _noisy_or([w for _, w in s.evidence or ()])
            strong = s.signature >= 0.5 or ev >= 0.5
            if not (context or strong):
                cue *= _NO_CONTEXT_FACTOR
            totals[entry_id] = _noisy_or([s.signature, cue, ev])
        if not totals:
            return NO_DIAGNOSIS
        ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
        best_id, best = ranked[0]
        if best < threshold:
            return Diagnosis(cause=None, confidence=best, evidence="nothing recognised with confidence")
        entry = self.entries[best_id]
        slot = scores[best_id]
        runner_up = slot.also if slot.signature >= max(slot_cue(slot), 0.5) else None
        if runner_up is None:
            for other_id, other in ranked[1:]:
                if (
                    self.entries[other_id].kind == "cause"
                    and other >= threshold
                    and other >= best * self.kb.thresholds.runner_up_ratio
                ):
                    runner_up = other_id
                    break
        if runner_up == best_id:
            runner_up = None
        evidence = _describe(slot)
        if entry.kind == "cause":
            return Diagnosis(cause=best_id, confidence=best, runner_up=runner_up, evidence=evidence)
        return Diagnosis(cause=None, confidence=best, known=best_id, runner_up=runner_up, evidence=evidence)


def slot_cue(slot: _Score) -> float:
    return _noisy_or([w for _, w in slot.cues or ()])


def _describe(slot: _Score) -> str:
    parts = []
    if slot.signature > 0:
        shown = slot.signature_text if len(slot.signature_text) <= 80 else slot.signature_text[:77] + "..."
        parts.append(f'matches "{shown}" ({slot.signature:.0%})')
    if slot.evidence:
        parts.append("evidence: " + ", ".join(e for e, _ in slot.evidence))
    if slot.cues:
        parts.append("cues: " + ", ".join(c.rstrip("*") for c, _ in slot.cues[:6]))
    return "; ".join(parts)


_MATCHERS: dict[str, Matcher] = {}


def get_matcher(kb: KnowledgeBase | None = None) -> Matcher:
    """A Matcher for the knowledge base (default: the one KNOWLEDGE_DIR points at), built once and reused."""
    if kb is None:
        from bot.knowledge import default_knowledge_dir, load_knowledge

        key = str(default_knowledge_dir().resolve())
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
