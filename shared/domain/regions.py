"""From the model's answers to Label Studio regions.

Output TextAreas hold every answer; Choices hold the labels the first answer names, one per line
(or comma-separated): an exact or case-insensitive match first, then the closest label if it is
similar enough.  Lines naming no label are ignored, and a single-choice tag gets at most one label.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from shared.domain.labeling import LabelingSpec

_DECORATION = re.compile(r"^\s*(?:[-*•]|\d+[.)]|label[s]?\s*:|category\s*:|answer\s*:)?\s*|[\s.!\"'`*]+$", re.I)


@dataclass(frozen=True)
class LabelMatch:
    label: str
    confidence: float


def _clean(candidate: str) -> str:
    return _DECORATION.sub("", candidate).strip().strip("\"'`*")


def _best_match(candidate: str, labels: list[str], threshold: float) -> LabelMatch | None:
    if candidate in labels:
        return LabelMatch(candidate, 1.0)
    folded = candidate.casefold()
    for label in labels:
        if label.casefold() == folded:
            return LabelMatch(label, 1.0)
    scored = [(difflib.SequenceMatcher(None, folded, label.casefold()).ratio(), label) for label in labels]
    ratio, label = max(scored, default=(0.0, ""))
    return LabelMatch(label, ratio) if ratio >= threshold else None


def match_labels(answer: str, labels: list[str], multiple: bool, threshold: float) -> list[LabelMatch]:
    """The labels an answer names, in the order it names them."""
    found: dict[str, LabelMatch] = {}
    for line in answer.splitlines():
        whole = _clean(line)
        if not whole:
            continue
        match = _best_match(whole, labels, threshold)
        pieces = (
            [match] if match else [_best_match(_clean(part), labels, threshold) for part in re.split(r"[,;]", whole)]
        )
        for piece in pieces:
            if piece and piece.label not in found:
                found[piece.label] = piece
                if not multiple:
                    return [piece]
    return list(found.values())


def build_regions(spec: LabelingSpec, prompt: str, answers: list[str], threshold: float) -> tuple[list[dict], float]:
    """The regions of one prediction and its score (how surely the labels matched; 1.0 for text only)."""
    regions = [spec.region(tag, text=answers) for tag in spec.text_outputs]
    confidences: list[float] = []
    first = answers[0] if answers else ""
    for tag in spec.choices:
        matches = match_labels(first, list(tag.labels), tag.attr.get("choice") == "multiple", threshold)
        if matches:
            regions.append(spec.region(tag, label=[match.label for match in matches]))
            confidences.extend(match.confidence for match in matches)
    regions.append(spec.region(spec.prompt, text=[prompt]))
    if spec.choices and not confidences:
        return regions, 0.0
    score = sum(confidences) / len(confidences) if confidences else 1.0
    return regions, round(score, 4)
