"""From the model's answers to Label Studio regions.

Output TextAreas hold every answer; Choices hold the labels the first answer names, read the way an annotator
would read them (shared.domain.answers.read_labels): a single-choice tag gets at most one label.
"""

from __future__ import annotations

from shared.domain.answers import read_labels
from shared.domain.labeling import LabelingSpec


def build_regions(spec: LabelingSpec, prompt: str, answers: list[str], threshold: float) -> tuple[list[dict], float]:
    """The regions of one prediction and its score (how surely the labels matched; 1.0 for text only)."""
    regions = [spec.region(tag, text=answers) for tag in spec.text_outputs]
    confidences: list[float] = []
    first = answers[0] if answers else ""
    for tag in spec.choices:
        multiple = tag.attr.get("choice") == "multiple"
        matches = read_labels(first, list(tag.labels), multiple=multiple, threshold=threshold, name=tag.name)
        if matches:
            regions.append(spec.region(tag, label=[match.label for match in matches]))
            confidences.extend(match.confidence for match in matches)
    regions.append(spec.region(spec.prompt, text=[prompt]))
    if spec.choices and not confidences:
        return regions, 0.0
    score = sum(confidences) / len(confidences) if confidences else 1.0
    return regions, round(score, 4)
