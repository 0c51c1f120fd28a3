"""The prediction's score: how sure the model was of the labels it chose.

Label Studio sorts and filters predictions by ``score`` (0..1), so it should mean the same thing
whatever the config:

1. With token log-probabilities (OpenAI's ``choices[0].logprobs.content``: a list of ``{token,
   logprob}``, asked for with ``logprobs=true``), the score is the mean probability ``exp(logprob)``
   of the tokens that spell the chosen labels in the answer: in a JSON answer each label's quoted
   value (``"Sarcastic"``), in prose its plain occurrences.  Tokens of free text, keys and
   punctuation do not count: they say nothing about the labels.
2. Otherwise (tool calls carry no log-probabilities, many providers send none; cached answers keep
   theirs) the score is the mean of the per-label match confidences the caller supplies: 1.0 for a
   label named exactly, less for a fuzzy or loosely quoted one.
3. A prediction with no label to be sure of scores 1.0 when the config asks for no labels (text
   answers only) and 0.0 when it asked for labels and got none.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _label_ranges(text: str, label: str) -> list[tuple[int, int]]:
    """Where ``label`` is written in ``text``: as a JSON string value if it is, else anywhere."""
    quoted = json.dumps(label, ensure_ascii=False)
    inner = quoted[1:-1]
    ranges, at = [], text.find(quoted)
    while at != -1:
        ranges.append((at + 1, at + 1 + len(inner)))
        at = text.find(quoted, at + 1)
    if ranges or not label:
        return ranges
    at = text.find(label)
    while at != -1:
        ranges.append((at, at + len(label)))
        at = text.find(label, at + 1)
    return ranges


def label_probability(tokens: Sequence[Any] | None, labels: Sequence[str]) -> float | None:
    """Mean probability of the tokens that carry ``labels``; None when there are none to measure."""
    if not tokens or not labels:
        return None
    pieces = [str(_field(token, "token") or "") for token in tokens]
    text = "".join(pieces)
    starts = []
    position = 0
    for piece in pieces:
        starts.append(position)
        position += len(piece)
    chosen: set[int] = set()
    for label in dict.fromkeys(labels):
        for begin, end in _label_ranges(text, label):
            # the tokens overlapping [begin, end): from the one holding ``begin`` on (an NER answer holds thousands
            # of labels and tens of thousands of tokens: no scan of every token for every label)
            index = max(bisect.bisect_right(starts, begin) - 1, 0)
            while index < len(starts) and starts[index] < end:
                if pieces[index] and starts[index] + len(pieces[index]) > begin:
                    chosen.add(index)
                index += 1
    logprobs = [_field(tokens[index], "logprob") for index in sorted(chosen)]
    logprobs = [value for value in logprobs if isinstance(value, int | float)]
    if not logprobs:
        return None
    return sum(math.exp(value) for value in logprobs) / len(logprobs)


def prediction_score(
    confidences: Sequence[float],
    asks_for_labels: bool,
    tokens: Sequence[Any] | None = None,
    labels: Sequence[str] = (),
) -> float:
    """The score of one prediction, rounded to 4 places (see the module's docstring for the rules)."""
    measured = label_probability(tokens, labels)
    if measured is None and confidences:
        measured = sum(confidences) / len(confidences)
    if measured is None:
        measured = 0.0 if asks_for_labels else 1.0
    return round(min(max(measured, 0.0), 1.0), 4)
