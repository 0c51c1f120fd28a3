"""Reading labels, ratings, numbers and taxonomy paths out of a model's free-text answer.

This is the fallback for the ``text`` output mode, for models that ignore the JSON schema and for JSON answers
that fail validation: it reads an answer the way a careful annotator would, not the way a parser would.

``read_labels`` tries these strategies in order; the first that finds a label wins:

1. JSON in the answer (fenced or bare): the strings under the key named like the control, else under a usual key
   (``label``, ``answer``, ``category``…), else any string in it.
2. Answer lines: a line, or an item of a comma/semicolon list on it, that *is* a label once list markers, markdown,
   quotes, ``Label:``-style prefixes and the reasons after the label are set aside.
3. Sentences: labels named in the prose, by their words or word stems (``a restaurant bill`` names
   ``Dining/Restaurants``), by an abbreviation (``tech``) or piece by piece (``science and technology`` names
   ``Sci/Tech``).  A label negated there (``not negative``, ``sarcastic? definitely not``) is not read, or reads
   as its ``Not …`` twin when the control has one.  A single-choice control reads nothing from labels offered as
   alternatives (``positive or neutral``) and, of several labels named, takes the one named in a verdict
   (``overall``, ``so``, ``the answer is``), else the first.
4. Word overlap: the one label whose distinctive words the answer uses (``book a flight`` → ``book_flight``).

A label is named by its own name or by a synonym the config gives it (a ``<Choice>``'s ``alias`` and ``hint``),
and a compound name by its pieces written with other joints or abbreviated (``Science & Technology`` or
``Science and Technology`` for ``Sci/Tech``, ``R&D`` for ``Research and Development`` and back).

Refusals (``I cannot determine…``, ``As an AI…``, ``None of the above``) are set aside before steps 2 to 4, unless
a line is a label as written (a config's ``None of the above``).  An answer that names no label and declines
(``declining_phrase``) reads as the config's own none/other choice (``None``, ``Other``, ``N/A``, ``Unknown``…)
when it has one, else as nothing: the caller makes that an empty prediction, not an error.

Confidence scale, the prediction score when no logprobs are available:

====================  ===================================================================================
1.0                   a line, list item or JSON value is the label or one of its synonyms (case, accents,
                      punctuation, markdown aside)
0.95                  a line is the negated form of a ``Not X`` label (``Non-sarcastic``)
0.9                   a line is one part of a compound label (``Utilities`` → ``Utilities/Bills``);
                      a sentence names the label as written; a compound label written with other joints
                      (``Clothing & Apparel``)
threshold … 0.95      a line is a near spelling of the label (difflib ratio, at least the threshold)
0.8                   a sentence names the label by word stems (``restaurant``), or negates X for a
                      ``Not X`` label (``not at all sarcastic`` → ``Not Sarcastic``)
0.7                   an abbreviation or prefix (``tech`` → ``technology``, ``neg`` → ``Negative``,
                      ``Science and Technology`` → ``Sci/Tech``); the none/other choice of an answer that declines
0.6                   word overlap (step 4)
====================  ===================================================================================

Two factors lower these: × 0.85 when the clause or line hedges (``probably``, ``I think``), and × 0.85 when a
single-choice answer names several labels and one had to be picked.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import snowballstemmer

from shared.domain.answers.json_in_text import first_json

EXACT = 1.0
NEGATED_LINE = 0.95
PART_LINE = 0.9
NAMED = 0.9
NEAR_SPELLING_CAP = 0.95
STEM_NAMED = 0.8
NEGATED_TWIN = 0.8
ABBREVIATION = 0.7
DECLINED = 0.7
OVERLAP = 0.6
HEDGED = 0.85
PICKED_AMONG_SEVERAL = 0.85

NEGATORS = frozenset({"not", "no", "non", "never", "neither", "nor", "nothing", "none", "without", "hardly"})
NEGATION_WINDOW = 4  # words before a label that a negator reaches ("not at all sarcastic", "don't think it's X")
# A clause made only of these, with a negator among them, denies the clause before it: "sarcastic?? definitely not".
DENIAL_WORDS = NEGATORS | {"nope", "nah", "definitely", "certainly", "absolutely", "really", "surely", "at", "all"}
HEDGES = frozenset({"probably", "likely", "maybe", "perhaps", "possibly", "might", "seems", "seem", "appears"})
HEDGE_PHRASES = ("i think", "leaning", "i guess", "not sure", "i would say", "i d say")
# Words that make a clause the answer's verdict: a label named there beats one named in passing.
VERDICT_CUES = frozenset(
    {"overall", "so", "therefore", "thus", "hence", "answer", "final", "ultimately", "clearly", "definitely",
     "mainly", "mostly", "primarily", "predominantly", "conclusion", "classified", "classify"}
)  # fmt: skip
# Conjunctions that start a new clause: a negation before them does not reach past them.
CLAUSE_CONJUNCTIONS = frozenset({"but", "however", "though", "although", "so", "yet", "whereas", "while", "therefore"})
# Phrases of an answer that declines to pick (matched on whole folded words, contractions expanded).
REFUSALS = (
    "cannot determine", "ca not determine", "cannot be determined", "unable to", "not possible to",
    "impossible to", "cannot classify", "ca not classify", "cannot tell", "ca not tell", "cannot help",
    "ca not help", "as an ai", "i am sorry", "i m sorry", "none of the", "none of these", "no label",
    "not applicable", "does not fit any", "do not fit any", "not enough information", "insufficient information",
    "not enough context", "i do not know", "not sure whether", "not sure if", "unsure whether",
    "unclear whether", "hard to say whether",
)  # fmt: skip
# An answer that is only one of these declines too: "None.", "N/A", "Unknown".
DECLINING_ANSWERS = frozenset(
    {("none",), ("n", "a"), ("unknown",), ("unclear",), ("undetermined",), ("nothing",), ("no", "label")}
)
# The names a config gives its choice for "nothing fits", with any name that starts with one of NONE_WORDS
# ("Other (please specify)", "None of these"): a declining answer reads as that choice.
NONE_CHOICES = DECLINING_ANSWERS | {
    ("not", "applicable"), ("misc",), ("miscellaneous",), ("neither",), ("uncertain",), ("cannot", "determine"),
    ("ca", "not", "tell"), ("cannot", "tell"), ("undecided",), ("no", "answer"),
}  # fmt: skip
NONE_WORDS = frozenset({"none", "other", "others"})
# Single-word labels that are also everyday words: prose names them only when written as in the config.
COMMON_WORDS = frozenset({"other", "others", "none", "yes", "no", "all", "any", "both", "unknown", "mixed", "ok"})
STOPWORDS = frozenset(
    {"a", "an", "the", "is", "are", "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "of",
     "to", "for", "and", "or", "in", "on", "at", "by", "with", "about", "as", "from", "into", "i", "s", "d", "m",
     "my", "their", "his", "her", "your", "our", "some", "very", "text", "label", "labels", "category", "answer",
     "user", "customer", "wants", "want", "asks", "asking", "would", "say", "like", "looks"}
)  # fmt: skip
USUAL_JSON_KEYS = (
    "label", "labels", "answer", "category", "categories", "class", "choice", "choices", "prediction",
    "result", "output", "value", "sentiment", "topic", "topics", "intent", "taxonomy", "rating",
)  # fmt: skip


@dataclass(frozen=True)
class LabelMatch:
    """A label read in an answer, with how surely it was read (the scale in the module docstring)."""

    label: str
    confidence: float
    declined: bool = False  # the answer declined to pick, and this is the config's own none/other choice


# --- words -------------------------------------------------------------------------------------------------------

_CAMEL_CASE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")  # CancelBooking → Cancel Booking
_NOT_CONTRACTION = re.compile(r"n['’]t\b", re.IGNORECASE)  # isn't → is not, don't → do not, can't → ca not
_WORD = re.compile(r"[^\W_]+")  # letters and digits: underscores, hyphens, slashes and punctuation separate words
_STEMMER = snowballstemmer.stemmer("english")
_STEMMER_LOCK = threading.Lock()  # a Snowball stemmer keeps its state while stemming: one word at a time


def _fold(text: str) -> str:
    """Casefolded, without accents or compatibility forms: 'Négatif' and 'ＮＥＧ' compare as plain 'negatif', 'neg'."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def _prepare(text: str) -> str:
    return _NOT_CONTRACTION.sub(" not", _CAMEL_CASE.sub(" ", text))


def _words(text: str) -> tuple[str, ...]:
    """The folded words of a text: what two spellings of a label must share to be the same label."""
    return tuple(_WORD.findall(_fold(_prepare(text))))


@lru_cache(maxsize=65536)
def stem_word(word: str) -> str:
    """The word's Snowball English stem (one word at a time, whatever the threads; the few-shot index uses it too)."""
    with _STEMMER_LOCK:
        return cast(str, _STEMMER.stemWord(word))  # snowballstemmer has no type hints


def _contains_phrase(words: Sequence[str], phrases: Sequence[str]) -> bool:
    joined = f" {' '.join(words)} "
    return any(f" {phrase} " in joined for phrase in phrases)


def _hedged(words: Sequence[str]) -> bool:
    return any(word in HEDGES for word in words) or _contains_phrase(words, HEDGE_PHRASES)


def _refuses(words: Sequence[str]) -> bool:
    return _contains_phrase(words, REFUSALS)


def _denies(words: Sequence[str]) -> bool:
    return bool(words) and set(words) <= DENIAL_WORDS and not set(words).isdisjoint(NEGATORS | {"nope", "nah"})


# --- labels ------------------------------------------------------------------------------------------------------

_PART_SEPARATOR = re.compile(r"\s*[/|]\s*")
# Where a compound name divides into the names it joins: "Sci/Tech", "R&D", "Research and Development".
_JOINT = re.compile(r"[/|&+]|\band\b", re.IGNORECASE)


def _pieces(name: str) -> tuple[tuple[str, ...], ...]:
    """The words of each name a compound name joins (("sci",), ("tech",)); () when it joins fewer than two."""
    pieces = tuple(words for piece in _JOINT.split(name) if (words := _words(piece)))
    return pieces if len(pieces) > 1 else ()


def _synonym(name: str) -> bool:
    """An alias or hint that names its label: words with a letter ("sci_tech", "BF-01"), not a bare code ("3")."""
    return any(not word.isdigit() for word in _words(name))


@dataclass(frozen=True)
class _Label:
    """A label as the reader compares it: the words of its names (its own, then its synonyms'), their compound
    parts and pieces, and the label it negates, if any."""

    name: str
    words: tuple[str, ...]
    names: tuple[tuple[str, ...], ...]  # its words, then each synonym's ("sci_tech" → ("sci", "tech"))
    parts: tuple[tuple[str, ...], ...]  # "Dining/Restaurants" → (("dining",), ("restaurants",)); () when simple
    pieces: tuple[tuple[tuple[str, ...], ...], ...]  # per compound name, the names it joins ("R&D" → r, d)
    negates: tuple[str, ...] | None  # "Not Sarcastic" → ("sarcastic",)
    common: bool  # an everyday word such as "Other": prose must write it as the config does

    @classmethod
    def of(cls, name: str, synonyms: Sequence[str] = ()) -> _Label:
        words = _words(name)
        spellings = [name, *(synonym for synonym in synonyms if _synonym(synonym))]
        names = tuple(dict.fromkeys(_words(spelling) for spelling in spellings))
        parts: list[tuple[str, ...]] = []
        for spelling in spellings:
            split = [_words(piece) for piece in _PART_SEPARATOR.split(spelling)]
            parts.extend(piece for piece in split if piece and len(split) > 1)
        pieces = tuple(dict.fromkeys(found for spelling in spellings if (found := _pieces(spelling))))
        negates = words[1:] if len(words) > 1 and words[0] in {"not", "no", "non"} else None
        common = len(words) == 1 and words[0] in COMMON_WORDS
        return cls(name, words, names, tuple(dict.fromkeys(parts)), pieces, negates, common)

    @property
    def forms(self) -> tuple[tuple[str, ...], ...]:
        """The word sequences that name this label: one of its names, or one part of a compound name."""
        return (*self.names, *self.parts)


def _labels_of(labels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None = None) -> list[_Label]:
    return [_Label.of(name, (synonyms or {}).get(name, ())) for name in dict.fromkeys(labels) if _words(name)]


# --- 2. a candidate that is a label ------------------------------------------------------------------------------


def _exact(words: tuple[str, ...], labels: list[_Label]) -> LabelMatch | None:
    return next((LabelMatch(label.name, EXACT) for label in labels if words in label.names), None)


def _negated_twin(words: tuple[str, ...], labels: list[_Label]) -> LabelMatch | None:
    """'Non-sarcastic' or 'not sarcastic' for a 'Not Sarcastic' label."""
    if len(words) < 2 or words[0] not in NEGATORS:
        return None
    return next((LabelMatch(label.name, NEGATED_LINE) for label in labels if label.negates == words[1:]), None)


def _only(names: list[str], confidence: float) -> LabelMatch | None:
    """The one label a weak strategy points to; two or more is ambiguity, and ambiguity reads nothing."""
    distinct = list(dict.fromkeys(names))
    return LabelMatch(distinct[0], confidence) if len(distinct) == 1 else None


def _part(words: tuple[str, ...], labels: list[_Label]) -> LabelMatch | None:
    return _only([label.name for label in labels if words in label.parts], PART_LINE)


def _near_spelling(words: tuple[str, ...], labels: list[_Label], threshold: float) -> LabelMatch | None:
    text = " ".join(words)
    scored = [
        (difflib.SequenceMatcher(None, text, " ".join(form)).ratio(), label.name)
        for label in labels
        for form in label.forms
        if len(form) == len(words)  # a misspelling, not extra words: "not negative" is no spelling of "negative"
    ]
    ratio, name = max(scored, key=lambda item: item[0], default=(0.0, ""))  # the first label on ties
    return LabelMatch(name, min(ratio, NEAR_SPELLING_CAP)) if ratio >= threshold and ratio > 0 else None


def _abbreviates(words: tuple[str, ...], form: tuple[str, ...]) -> bool:
    """'tech' → ('technology',), 'vehicle maint' → ('vehicle', 'maintenance'): each word starts its counterpart."""
    return len(words) <= len(form) and words != form and all(f.startswith(w) for w, f in zip(words, form, strict=False))


def _abbreviation(words: tuple[str, ...], labels: list[_Label]) -> LabelMatch | None:
    if sum(map(len, words)) < 3:  # "po", "ne": too short to stand for one label
        return None
    return _only([label.name for label in labels for form in label.forms if _abbreviates(words, form)], ABBREVIATION)


def _abbreviates_piece(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
    """('sci',) → ('science',), ('r',) → ('research',): each word starts its counterpart."""
    return len(short) <= len(long) and all(f.startswith(w) for w, f in zip(short, long, strict=False))


def _compound(text: str, labels: list[_Label]) -> LabelMatch | None:
    """A compound name written with other joints or abbreviated piece by piece: 'Science and Technology' or
    'Science & Technology' for 'Sci/Tech', 'R&D' for 'Research and Development', 'Clothing & Apparel'."""
    written = _pieces(text)
    if not written:
        return None
    found: dict[str, float] = {}
    for label in labels:
        for named in label.pieces:
            if len(named) == len(written) and all(
                _abbreviates_piece(a, b) or _abbreviates_piece(b, a) for a, b in zip(written, named, strict=True)
            ):
                confidence = NAMED if named == written else ABBREVIATION
                found[label.name] = max(found.get(label.name, 0.0), confidence)
    best = max(found.values(), default=0.0)  # the pieces as written beat abbreviations of them
    return _only([name for name, confidence in found.items() if confidence == best], best)


def _match_candidate(text: str, labels: list[_Label], threshold: float) -> LabelMatch | None:
    """The label a short piece of answer is, tried from the surest reading to the loosest."""
    words = _words(text)
    if not words:
        return None
    return (
        _exact(words, labels)
        or _negated_twin(words, labels)
        or _part(words, labels)
        or _near_spelling(words, labels, threshold)
        or _compound(text, labels)
        or _abbreviation(words, labels)
    )


# A line's shape, in the order the line reader peels it:
_LIST_MARKER = re.compile(r"^\s*(?:[-*•+]\s+|\d{1,2}[.)]\s+|\(?[a-zA-Z]\)\s+)")  # "- x", "1. x", "2) x", "a) x"
# "Label: X", "Sentiment = X", "答案：X", "Overall → X": a short lead-in (at most PREFIX_WORDS words) before a colon,
# an equals sign or an arrow.
_PREFIX = re.compile(r"^(?P<lead>[^:：=→]{1,60}?)\s*(?::|：|=|→|->|=>)\s*(?=\S)")
PREFIX_WORDS = 4
# Separators that may start with spaces are only tried where a run of spaces starts (or after it): tried from
# every space of a long run, each attempt would read the rest of the run: quadratic in the run's length.
# A match can never start in the middle of a run anyway: one starting there also starts at the run's beginning.
_NOT_MID_SPACES = r"(?:(?<!\s)|(?!\s))"
# Where the reasons after a label start: a spaced or long dash, an opening bracket, or a sentence stop or colon
# that is not inside a number ("0.8") or an abbreviation ("U.S.").
_REASONS = re.compile(rf"{_NOT_MID_SPACES}(?:\s+-{{1,2}}\s+|\s*[—–]\s*|\s*[(\[]|[:;.!?…。！？](?!\w))")
# Items of a list written on one line: "Sports, Politics", "Sports; politics", "Politics & Technology".
_ITEMS = re.compile(rf"{_NOT_MID_SPACES}(?:\s*[,;|、，；]\s*|\s+(?:and|&|\+)\s+)", re.IGNORECASE)


def _without_prefix(text: str) -> str:
    """The text after a short lead-in; nothing after one that negates ("Not relevant: Technology")."""
    found = _PREFIX.match(text)
    lead = _words(found["lead"]) if found else ()
    if not found or len(lead) > PREFIX_WORDS:
        return text
    return "" if not NEGATORS.isdisjoint(lead) else text[found.end() :]


def _head_and_reasons(text: str) -> tuple[str, str]:
    head, *reasons = _REASONS.split(text, maxsplit=1)
    return head, "".join(reasons)


def _list_of_labels(items: list[str], labels: list[_Label], threshold: float) -> list[LabelMatch]:
    """Every item a label, or nothing: "Sports, mostly" is prose, left to the sentence reader."""
    matches: list[LabelMatch] = []
    for item in items:
        match = _match_candidate(_head_and_reasons(_without_prefix(item))[0], labels, threshold)
        if match is None:
            return []
        matches.append(match)
    return matches


def _read_line(line: str, labels: list[_Label], threshold: float) -> list[LabelMatch]:
    """The labels a line *is*: the whole line or its part after a prefix, a list of labels, or the part before
    the reasons that follow a label."""
    body = _LIST_MARKER.sub("", line)
    rest = _without_prefix(body)
    for candidate in dict.fromkeys((body, rest)):
        match = _match_candidate(candidate, labels, threshold)
        if match:
            return [match]
    items = [item for item in _ITEMS.split(rest) if _words(item)]
    listed = _list_of_labels(items, labels, threshold) if len(items) > 1 else []
    if listed:
        return listed
    for text in dict.fromkeys((body, rest)):
        head, reasons = _head_and_reasons(text)
        match = None if _denies(_words(reasons)) else _match_candidate(head, labels, threshold)
        if match:  # "sarcastic?? definitely not" is no verdict of Sarcastic: the sentence reader weighs the denial
            return [match]
    return []


def _read_lines(text: str, labels: list[_Label], threshold: float) -> list[LabelMatch]:
    found: list[LabelMatch] = []
    for line in text.splitlines():
        words = _words(line)
        if words and _refuses(words):  # a refusal, unless the config has a label for it ("None of the above")
            head = _head_and_reasons(_without_prefix(_LIST_MARKER.sub("", line)))[0]
            found.extend(match for match in (_exact(words, labels), _exact(_words(head), labels)) if match)
            continue
        if not words:
            continue
        factor = HEDGED if _hedged(words) else 1.0
        found.extend(LabelMatch(m.label, round(m.confidence * factor, 4)) for m in _read_line(line, labels, threshold))
    return found


# --- 3. and 4. prose ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_")
_WORD_INTERNAL = frozenset("-/'’&_@#%$€£+*")  # punctuation that does not end a clause: "non-sarcastic", "it's"


@dataclass(frozen=True)
class _Token:
    surface: str  # as written: common-word labels must be named as in the config
    word: str  # folded
    stem: str
    clause: int
    negated: bool  # a negator stands at most NEGATION_WINDOW words before it in its clause, or the next clause denies
    hedged: bool  # its clause hedges
    cued: bool  # its clause carries a verdict cue ("overall", "so", "the answer is")


def _clauses(text: str) -> Iterator[list[str]]:
    """The answer's clauses as lists of words as written: punctuation, sentence ends and conjunctions split them."""
    clause: list[str] = []
    for line in _prepare(re.sub(r"\s-+\s", " — ", text)).splitlines():
        for piece in _TOKEN.findall(line):
            is_word = piece[0].isalnum()
            breaks = (not is_word and piece not in _WORD_INTERNAL and unicodedata.category(piece)[0] in "PS") or (
                is_word and _fold(piece) in CLAUSE_CONJUNCTIONS
            )
            if breaks and clause:
                yield clause
                clause = []
            if is_word:
                clause.append(piece)
        if clause:
            yield clause
            clause = []


def _tokens(text: str) -> list[_Token]:
    """The words of the clauses that do not refuse, each with the facts the prose readers ask of it."""
    tokens: list[_Token] = []
    clauses = [(clause, [_fold(surface) for surface in clause]) for clause in _clauses(text)]
    for index, (clause, words) in enumerate(clauses):
        if _refuses(words):
            continue
        hedged, cued = _hedged(words), any(word in VERDICT_CUES for word in words)
        denied = index + 1 < len(clauses) and _denies(clauses[index + 1][1])
        for position, (surface, word) in enumerate(zip(clause, words, strict=True)):
            before = words[max(0, position - NEGATION_WINDOW) : position]
            negated = denied or not NEGATORS.isdisjoint(before)
            tokens.append(_Token(surface, word, stem_word(word), index, negated, hedged, cued))
    return tokens


@dataclass(frozen=True)
class _Mention:
    label: _Label
    start: int
    end: int
    confidence: float


def _form_mentions(tokens: list[_Token], label: _Label, at: dict[str, list[int]]) -> Iterator[_Mention]:
    """Where the prose names a label by one of its forms, word for word or stem for stem, within one clause.

    ``at`` lists where each stem occurs, so that only the places a form could start are compared."""
    for form in label.forms:
        stems = tuple(stem_word(word) for word in form)
        for start in at.get(stems[0], ()):
            window = tokens[start : start + len(form)]
            if tuple(t.stem for t in window) != stems or len({t.clause for t in window}) > 1:
                continue
            if label.common and window[0].surface != label.name:
                continue
            same_words = tuple(t.word for t in window) == form
            yield _Mention(label, start, start + len(form), NAMED if same_words else STEM_NAMED)


def _abbreviated(token: _Token, labels: list[_Label]) -> _Label | None:
    """The single-word label a word abbreviates ('tech' → 'technology'), or whose form its stem starts
    ('complaining' → 'complaint'): a word of four letters or more, a stem of six or more, and only one label."""
    starts = [(token.word,)] + ([(token.stem,)] if len(token.stem) >= 6 else [])
    found = {
        label.name: label for label in labels for form in label.forms for start in starts if _abbreviates(start, form)
    }
    only = next(iter(found.values())) if len(found) == 1 else None
    return only if only and all(len(form) == 1 for form in only.forms) else None


def _abbreviation_mentions(tokens: list[_Token], labels: list[_Label]) -> Iterator[_Mention]:
    known: dict[str, _Label | None] = {}  # answers repeat their words: decide each word once
    for index, token in enumerate(tokens):
        if len(token.word) < 4 or token.word in STOPWORDS:
            continue
        if token.word not in known:
            known[token.word] = _abbreviated(token, labels)
        label = known[token.word]
        if label:
            yield _Mention(label, index, index + 1, ABBREVIATION)


def _same_word(written: str, named: str) -> bool:
    """In prose a word names a compound's word as written or abbreviated to three letters or more ('science' and
    'sci'); a single letter only as itself, so 'results and data' is no 'R&D'."""
    shorter = min(len(written), len(named))
    return written == named or (shorter >= 3 and (written.startswith(named) or named.startswith(written)))


def _pieces_end(tokens: list[_Token], start: int, pieces: tuple[tuple[str, ...], ...]) -> int | None:
    """Where the pieces of a compound name, named one after the other from ``start`` ('and' allowed between
    them) end, within one clause; None when they are not named there."""
    at = start
    for index, piece in enumerate(pieces):
        if index and at < len(tokens) and tokens[at].word == "and":
            at += 1
        window = tokens[at : at + len(piece)]
        if len(window) < len(piece) or not all(_same_word(t.word, w) for t, w in zip(window, piece, strict=True)):
            return None
        at += len(piece)
    return at if tokens[start].clause == tokens[at - 1].clause else None


def _compound_mentions(tokens: list[_Token], labels: list[_Label]) -> Iterator[_Mention]:
    """Where the prose names a compound label piece by piece: 'science and technology' for 'Sci/Tech'.

    Each distinct word is compared once with each compound's first word; only where one matches are the next
    words read, so the work grows with the answer's length, not with its length times the labels'."""
    compounds = [(label, pieces) for label in labels for pieces in label.pieces]
    if not compounds:
        return
    at: dict[str, list[int]] = {}
    for index, token in enumerate(tokens):
        at.setdefault(token.word, []).append(index)
    for label, pieces in compounds:
        named = tuple(word for piece in pieces for word in piece)
        for word, starts in at.items():
            if not _same_word(word, pieces[0][0]):
                continue
            for start in starts:
                end = _pieces_end(tokens, start, pieces)
                if end is not None:
                    written = tuple(token.word for token in tokens[start:end] if token.word != "and")
                    yield _Mention(label, start, end, NAMED if written == named else ABBREVIATION)


def _longest_first(mentions: list[_Mention]) -> list[_Mention]:
    """Overlapping mentions keep the longest: 'not sarcastic' is one mention of Not Sarcastic, not of Sarcastic."""
    kept: list[_Mention] = []
    taken: set[int] = set()
    for mention in sorted(mentions, key=lambda m: (m.start - m.end, m.start, -m.confidence)):
        span = set(range(mention.start, mention.end))
        if not span & taken:
            kept.append(mention)
            taken |= span
    return sorted(kept, key=lambda m: m.start)


def _unnegated(mention: _Mention, tokens: list[_Token], labels: list[_Label]) -> _Mention | None:
    """A negated mention reads as the label's 'Not …' twin when there is one, else as nothing."""
    if mention.label.negates is not None or not tokens[mention.start].negated:
        return mention
    twin = next((label for label in labels if label.negates in mention.label.forms), None)
    return _Mention(twin, mention.start, mention.end, NEGATED_TWIN) if twin else None


def _mentions(tokens: list[_Token], labels: list[_Label]) -> list[_Mention]:
    at: dict[str, list[int]] = {}
    for index, token in enumerate(tokens):
        at.setdefault(token.stem, []).append(index)
    found = [mention for label in labels for mention in _form_mentions(tokens, label, at)]
    found += _abbreviation_mentions(tokens, labels)
    found += _compound_mentions(tokens, labels)
    read = (_unnegated(mention, tokens, labels) for mention in _longest_first(found))
    return [mention for mention in read if mention]


def _overlap(tokens: list[_Token], labels: list[_Label]) -> LabelMatch | None:
    """The one label whose distinctive words the answer uses: each word counts 1/(number of labels that have it)."""
    used = {token.stem for token in tokens if not token.negated and token.word not in STOPWORDS}
    stems_of = {
        label.name: {stem_word(word) for name in label.names for word in name if word not in STOPWORDS}
        for label in labels
    }
    sharing: dict[str, int] = {}
    for stems in stems_of.values():
        for stem in stems:
            sharing[stem] = sharing.get(stem, 0) + 1
    scores = {name: sum(1 / sharing[stem] for stem in stems & used) for name, stems in stems_of.items()}
    best = max(scores.values(), default=0.0)
    winners = [name for name, score in scores.items() if score == best]
    return LabelMatch(winners[0], OVERLAP) if best >= 1.0 and len(winners) == 1 else None


def _first_two_names(names: Iterable[str]) -> list[tuple[str, ...]]:
    """For each prefix of ``names``, its first two distinct names: enough to tell whether it holds another name."""
    seen: tuple[str, ...] = ()
    out = []
    for name in names:
        if len(seen) < 2 and name not in seen:
            seen = (*seen, name)
        out.append(seen)
    return out


def _offered_as_alternatives(mentions: list[_Mention], tokens: list[_Token]) -> set[int]:
    """The indexes of the mentions (in text order) that 'or' joins to a mention of another label in their clause:
    'it could be positive or neutral' is a doubt, not a verdict.

    Counts of 'or' before each token, and per clause each prefix's and suffix's first two distinct labels, make
    this one pass with a binary search per mention: an answer naming a label 10,000 times takes 10,000 steps,
    not 10,000 × 10,000."""
    ors = list(itertools.accumulate((token.word == "or" for token in tokens), initial=0))
    by_clause: dict[int, list[int]] = {}
    for index, mention in enumerate(mentions):
        by_clause.setdefault(tokens[mention.start].clause, []).append(index)
    offered: set[int] = set()
    for members in by_clause.values():
        names = [mentions[index].label.name for index in members]
        ors_before = [ors[mentions[index].start] for index in members]  # both grow along the clause
        ors_after = [ors[mentions[index].end] for index in members]
        first_names = _first_two_names(names)  # [k]: among names[: k + 1]
        last_names = _first_two_names(reversed(names))[::-1]  # [k]: among names[k:]
        for position, (index, name) in enumerate(zip(members, names, strict=True)):
            later = bisect.bisect_right(ors_before, ors_after[position])  # the first with an 'or' between them
            earlier = bisect.bisect_left(ors_after, ors_before[position])  # how many before have an 'or' between
            if (later < len(members) and last_names[later] != (name,)) or (
                earlier > 0 and first_names[earlier - 1] != (name,)
            ):
                offered.add(index)
    return offered


def _read_prose(text: str, labels: list[_Label], multiple: bool) -> list[LabelMatch]:
    tokens = _tokens(text)
    mentions = _mentions(tokens, labels)
    if not mentions:
        overlap = _overlap(tokens, labels)
        return [overlap] if overlap else []
    if not multiple:
        offered = _offered_as_alternatives(mentions, tokens)
        mentions = [mention for index, mention in enumerate(mentions) if index not in offered]
    by_label: dict[str, tuple[_Mention, _Token]] = {}
    for mention in mentions:
        by_label.setdefault(mention.label.name, (mention, tokens[mention.start]))
    picks = list(by_label.values())
    factor = 1.0
    if not multiple and len(picks) > 1:
        picks = [max(picks, key=lambda pick: (pick[1].cued, -pick[0].start))]
        factor = PICKED_AMONG_SEVERAL
    return [
        LabelMatch(mention.label.name, round(mention.confidence * factor * (HEDGED if token.hedged else 1.0), 4))
        for mention, token in picks
    ]


# --- 1. JSON -----------------------------------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _under_key(value: Any, keys: Sequence[str]) -> list[str] | None:
    """The strings under the first of ``keys`` found in a JSON value (nested objects included), or None."""
    if isinstance(value, dict):
        folded = {_words(str(key)): item for key, item in value.items()}
        for key in keys:
            if _words(key) in folded:
                return _strings(folded[_words(key)])
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _under_key(item, keys)
            if found is not None:
                return found
    return None


def _read_json(answer: str, labels: list[_Label], name: str | None, threshold: float) -> list[LabelMatch]:
    value = first_json(answer, "[{")  # an object or a list of labels
    if value is None:
        return []
    for keys in ([name] if name else [], USUAL_JSON_KEYS):
        strings = _under_key(value, keys) if keys else None
        if strings:
            matches = [match for text in strings if (match := _match_candidate(text, labels, threshold))]
            return matches or _read_prose("\n".join(strings), labels, multiple=True)
    return [match for text in _strings(value) if (match := _match_candidate(text, labels, threshold))]


# --- read_labels -------------------------------------------------------------------------------------------------


def _best(matches: list[LabelMatch]) -> list[LabelMatch]:
    """One label for a single-choice control: the surest, the first named on ties."""
    return [max(matches, key=lambda match: match.confidence)] if matches else []


def declining_phrase(answer: str) -> str | None:
    """The words with which an answer declines to pick a label ("cannot determine", "none of these"), or None.

    Conservative: only the phrases of ``REFUSALS``, or an answer that is nothing but "None", "N/A",
    "Unknown"…; "not sarcastic" or "there is no clear sentiment" are answers, not refusals to answer."""
    words = _words(answer)
    if words in DECLINING_ANSWERS:
        return " ".join(words)
    joined = f" {' '.join(words)} "
    return next((phrase for phrase in REFUSALS if f" {phrase} " in joined), None)


def _none_choice(labels: list[_Label]) -> _Label | None:
    """The config's own label for "nothing fits" ("None", "Other", "N/A", "Unknown"…), the first in config order."""
    return next(
        (label for label in labels if any(name in NONE_CHOICES or name[0] in NONE_WORDS for name in label.names)),
        None,
    )


def read_labels(
    answer: str,
    labels: Sequence[str],
    *,
    multiple: bool,
    threshold: float,
    name: str | None = None,
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> list[LabelMatch]:
    """The labels of a Choices control that an answer names, in the order it names them.

    ``multiple`` is the control's ``choice="multiple"``: only then may several labels be read, else the one best.
    ``threshold`` is CHOICE_MATCH_THRESHOLD, the least difflib ratio a near spelling needs; ``name`` is the
    control's name, the JSON key preferred when a JSON answer has several; ``synonyms`` are other names of a
    label (its ``<Choice>``'s alias and hint), read as the label.  Confidences follow the module's scale.

    An answer that names no label and declines (``declining_phrase``) reads as the config's none/other choice
    when it has one (``LabelMatch.declined``), else as nothing.
    """
    known = _labels_of(labels, synonyms)
    if not known or not answer.strip():
        return []
    strategies: tuple[Callable[[], list[LabelMatch]], ...] = (
        lambda: _read_json(answer, known, name, threshold),
        lambda: _read_lines(answer, known, threshold),
        lambda: _read_prose(answer, known, multiple),
    )
    for strategy in strategies:
        found = _distinct(strategy())
        if found:
            return found if multiple else _best(found)
    fallback = _none_choice(known) if declining_phrase(answer) else None
    return [LabelMatch(fallback.name, DECLINED, declined=True)] if fallback else []


def _distinct(matches: list[LabelMatch]) -> list[LabelMatch]:
    """Each label once, where it was first named, with the best confidence it was read with."""
    kept: dict[str, LabelMatch] = {}
    for match in matches:
        if match.label not in kept or match.confidence > kept[match.label].confidence:
            kept[match.label] = match  # a dict keeps a key where it was first inserted
    return list(kept.values())


# --- other tags --------------------------------------------------------------------------------------------------

# A number as people write it, in the order the alternatives are tried:
_NUMBER = re.compile(
    r"(?<![\w.,])"  # not the middle of a word or of another number
    r"(?P<sign>[-−]?)"  # ASCII hyphen-minus or the Unicode minus sign
    r"(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 1,234 and 1,234.5: comma thousands (English)
    r"|\d{1,3}(?:\.\d{3})+,\d+"  # 1.234,5: dot thousands and a decimal comma (German, French…)
    r"|\d+(?:[.,]\d+)?)"  # 1234, 1234.5 and 3,5 (a decimal comma)
    r"(?!\d)"
)
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
# A rating over a scale: "4/5", "8 out of 10"; tried only where a run of digits starts (from inside a run it
# cannot match where the run's start did not, and the attempts would read 10,000 digits 10,000 times).
_FRACTION = re.compile(r"(?<!\d)(?P<value>\d+(?:[.,]\d+)?)\s*(?:/|out\s+of)\s*(?P<scale>\d+)", re.IGNORECASE)
_STAR = "★⭐🌟"
_STARS = re.compile(rf"(?:[{_STAR}]\ufe0f?)+")  # "★★★★☆" is four (empty stars do not count), "⭐️⭐️" two


def _numbers(text: str) -> Iterator[float]:
    """The numbers of a text in order, their thousands separators dropped and decimal commas read as points."""
    for found in _NUMBER.finditer(text):
        digits = found["digits"]
        if "," in digits and "." in digits:
            thousands = "," if digits.index(",") < digits.index(".") else "."
            digits = digits.replace(thousands, "")
        elif re.fullmatch(r"\d{1,3}(?:,\d{3})+", digits):
            digits = digits.replace(",", "")
        number = float(digits.replace(",", ".")) * (-1 if found["sign"] else 1)
        if math.isfinite(number):  # 400 digits and more read as infinity, which no tag can store
            yield number


def read_number(answer: str, minimum: float | None = None, maximum: float | None = None) -> float | None:
    """The first number in the answer between ``minimum`` and ``maximum`` (a Number tag's min/max), or None.

    ``1,234.5``, ``1.234,5`` and ``3,5`` are read as people mean them; ``1,234`` is one thousand two hundred
    thirty-four.
    """
    for number in _numbers(answer):
        if (minimum is None or number >= minimum) and (maximum is None or number <= maximum):
            return number
    return None


def _rating_value(answer: str, max_rating: int) -> float | None:
    """A rating as the answer writes it: a fraction (scaled to max_rating), star glyphs, or a count in digits/words."""
    fraction = _FRACTION.search(answer)
    if fraction and float(fraction["scale"]) > 0:
        return float(fraction["value"].replace(",", ".")) * max_rating / float(fraction["scale"])
    stars = _STARS.search(answer)
    if stars:
        return float(sum(char in _STAR for char in stars.group()))
    for word in _words(answer):
        if word in _NUMBER_WORDS:
            return float(_NUMBER_WORDS[word])
        if word.isdigit():
            return next(_numbers(answer), None)
    return None


def read_rating(answer: str, max_rating: int = 5) -> int | None:
    """The rating an answer gives, 1..max_rating (a Rating tag's maxRating), or None.

    ``4/5``, ``4 out of 5``, ``4 stars``, ``★★★★☆``, ``four`` and ``Rating: 4`` all read 4; ``8/10`` reads 4 on a
    five-star scale; halves round up.  0 reads None: Label Studio shows a Rating of 0 as no rating.
    """
    value = _rating_value(answer, max_rating)
    if value is None or not math.isfinite(value):  # "1e999 out of 5" is no rating
        return None
    rating = math.floor(value + 0.5)
    return rating if 1 <= rating <= max_rating else None


def _node_matches(answer: str, paths: Sequence[Sequence[str]], threshold: float) -> list[LabelMatch]:
    """The Taxonomy nodes an answer names, by name."""
    names = list(dict.fromkeys(name for path in paths for name in path))
    # Path separators become list separators, so the line reader sees "Animals, Birds, Eagle"; a separator that
    # occurs inside a node's name ("Dining/Restaurants") stays as it is.
    separators = [sep for sep in (">", "→", "»", "::", ":", "/", "\\") if not any(sep in name for name in names)]
    text = re.sub("|".join(re.escape(sep) for sep in separators), ", ", answer) if separators else answer
    return read_labels(text, names, multiple=True, threshold=threshold)


def taxonomy_declines(answer: str, paths: Sequence[Sequence[str]], *, threshold: float) -> bool:
    """Whether ``read_taxonomy`` reads the Taxonomy's none/other node because the answer declines (``read_labels``)."""
    matches = _node_matches(answer, paths, threshold)
    return bool(matches) and all(match.declined for match in matches)


def read_taxonomy(
    answer: str, paths: Sequence[Sequence[str]], *, multiple: bool = True, threshold: float
) -> list[list[str]]:
    """The Taxonomy paths an answer names, each from the root to the node named, ancestors folded in.

    ``paths`` are the paths of every selectable node.  A node named alone (``Eagle``) or with its ancestors
    (``Animals > Birds > Eagle``, ``Plants: Oak``) reads as its full path; a name that two branches share goes to
    the branch whose ancestors the answer names, else to the first in config order.  A path that is the ancestor
    of another one read is dropped.
    """
    named = [match.label for match in _node_matches(answer, paths, threshold)]
    chosen: list[list[str]] = []
    for node in named:
        ending_here = [list(path) for path in paths if path and path[-1] == node]
        if ending_here:
            chosen.append(max(ending_here, key=lambda path: sum(name in named for name in path[:-1])))
    deepest = [
        path
        for index, path in enumerate(chosen)
        if path not in chosen[:index]
        and not any(len(other) > len(path) and other[: len(path)] == path for other in chosen)
    ]
    return deepest if multiple else deepest[:1]
