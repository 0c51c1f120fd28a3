"""Span tasks on texts too long for one answer: split on sentence boundaries, predicted part by part, merged.

An NER answer lists every mention, so its length grows with the text: a long document overruns the model's
output budget (the answer is cut off and unreadable) well before its context.  Above ``LONG_TEXT_CHARS`` the
text that ``Labels`` quote from is cut into parts of at most that many characters, each ending at a sentence
boundary (else at a space), each starting a little before the previous one ended (``overlap``: whole sentences,
so a mention cut by one part's end is whole in the next).  Each part is asked as a task of its own, with that
part in place of the text; the spans of each part are shifted by where it starts, and a span found twice in an
overlap (same offsets, same labels) is kept once.  The other controls are answered from the first part's
answer (the beginning of the document): only the spans need the whole text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.domain.labeling.spec import SPANS, LabelingSpec
from shared.domain.types import Prediction

# Where a sentence ends: after . ! ? … (optionally closed by a quote or bracket) and the spaces that follow, after
# their CJK forms (written without spaces), or at a blank line.  A boundary is where the next sentence starts.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？])[」』”’）]*|\n\s*\n")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Part:
    start: int  # where the part starts in the whole text
    text: str


def overlap_for(limit: int) -> int:
    """Characters each part repeats of the one before: a twentieth of a part (a few sentences at the default)."""
    return limit // 20


def split_text(text: str, limit: int) -> list[Part]:
    """``text`` in parts of at most ``limit`` characters (see the module's docstring); one part when it fits."""
    if len(text) <= limit:
        return [Part(0, text)]
    sentences = [match.end() for match in _SENTENCE_BREAK.finditer(text)]
    spaces = [match.end() for match in _SPACE.finditer(text)]
    overlap = overlap_for(limit)
    parts: list[Part] = []
    start = 0
    while len(text) - start > limit:
        end = _last_in(sentences, start + limit // 2, start + limit) or _last_in(spaces, start, start + limit)
        end = end or start + limit  # one word longer than a part: cut in it
        parts.append(Part(start, text[start:end]))
        low = max(start + 1, end - overlap)
        start = _first_in(sentences, low, end) or _first_in(spaces, low, end) or end
    parts.append(Part(start, text[start:]))
    return parts


def _last_in(boundaries: Sequence[int], low: int, high: int) -> int | None:
    """The last boundary in ``(low, high]``, None if there is none."""
    index = bisect.bisect_right(boundaries, high) - 1
    return boundaries[index] if index >= 0 and boundaries[index] > low else None


def _first_in(boundaries: Sequence[int], low: int, high: int) -> int | None:
    """The first boundary in ``[low, high)``, None if there is none."""
    index = bisect.bisect_left(boundaries, low)
    return boundaries[index] if index < len(boundaries) and boundaries[index] < high else None


@dataclass(frozen=True)
class SplitTask:
    """A task whose ``field`` is predicted in ``parts``; ``outputs`` are the span controls that quote from it."""

    field: str
    outputs: frozenset[str]
    parts: tuple[Part, ...]

    def data_for(self, data: Mapping[str, Any], part: Part) -> dict[str, Any]:
        """The task's data as one part's request sees it: that part in place of the whole text."""
        return {**data, self.field: part.text}

    def merge(self, predictions: Sequence[Prediction]) -> Prediction:
        """One prediction from the parts' (in the order of ``parts``): the spans of every part at their offsets
        in the whole text, each once; the other regions from the first part; the mean of the parts' scores."""
        regions: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        for part, prediction in zip(self.parts, predictions, strict=True):
            for region in prediction["result"]:
                if region.get("from_name") not in self.outputs:
                    if part is self.parts[0]:
                        regions.append(region)
                    continue
                value = region["value"]
                start, end = value["start"] + part.start, value["end"] + part.start
                key = (region["from_name"], start, end, tuple(value.get("labels", ())))
                if key not in seen:
                    seen.add(key)
                    regions.append({**region, "value": {**value, "start": start, "end": end}})
        score = sum(prediction["score"] for prediction in predictions) / len(predictions)
        return {**predictions[0], "result": regions, "score": round(score, 4)}


def request_data(split: SplitTask | None, data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The data of each request a task makes: one per part, or the task's own when it is asked whole."""
    return [split.data_for(data, part) for part in split.parts] if split else [dict(data)]


def merged(split: SplitTask | None, predictions: Sequence[Prediction]) -> Prediction:
    """The task's prediction from its requests' (``request_data``'s order)."""
    return split.merge(predictions) if split else predictions[0]


def split_task(spec: LabelingSpec, data: Mapping[str, Any], limit: int) -> SplitTask | None:
    """How a task is split, or None when it is asked whole: no ``Labels`` on a text longer than ``limit``
    (0: never split).  The first such text is split; a second long one goes whole with each part."""
    if limit <= 0:
        return None
    for output in spec.outputs:
        field = output.target.field
        if output.kind != SPANS or field is None:
            continue
        text = data.get(field)
        if isinstance(text, str) and len(text) > limit:
            outputs = frozenset(
                other.name for other in spec.outputs if other.kind == SPANS and other.target.field == field
            )
            return SplitTask(field, outputs, tuple(split_text(text, limit)))
    return None
