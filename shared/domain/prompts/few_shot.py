"""Few-shot examples from the team's own annotations: which to show the model with a task, and how.

The pool is the project's tasks that have a ground truth, by the rule ``eval`` scores against
(``ground_truth``: the annotation marked ground truth, else the latest one not skipped).  Each becomes an
``Example``: the task's content as the model reads it, and its ground truth in the exact form the model must
answer in, the JSON object of the answer schema (every field, null where the team left it empty), or in
``text`` mode the plain text a model would write.  Three strategies choose ``k`` of them for a task:

- ``fixed``: one label-balanced set, the same for every task (round robin over the labels, each label's
  examples in a fixed pseudo-random order), so it goes in the static part of the messages and the provider's
  prefix cache still serves it;
- ``similar``: the k examples nearest to the task's text by BM25 over stemmed words (``similarity``), most
  similar first (with SIMILARITY_EMBEDDINGS_MODEL, by the cosine similarity of their embeddings instead);
- ``diverse``: maximal marginal relevance over the nearest ones: relevance to the task against redundancy with
  the examples already chosen, where an example of a label already shown counts as a duplicate and others by
  their BM25 (or embeddings') likeness to it, so the set spreads over the labels near the task before it repeats one.

A task never gets its own annotation as an example: an example of the same task id, or of the same data, is
never chosen for it (``fixed`` then puts the next spare example of the same label in that slot).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from shared.domain.config import FewShotStrategy as Strategy
from shared.domain.errors import TaskError
from shared.domain.evaluation.ground_truth import GroundTruthTask
from shared.domain.labeling.schema import path_separator, taxonomy_nodes
from shared.domain.labeling.spec import (
    CHOICES,
    NUMBER,
    PAIRWISE,
    PARAGRAPH_SPANS,
    RATING,
    SPANS,
    TAXONOMY,
    TEXT,
    LabelingSpec,
    Output,
)
from shared.domain.prompts.messages import task_text
from shared.domain.prompts.similarity import BM25, Embed, Ranker, VectorRanker, stems
from shared.domain.types import data_digest

MMR_LAMBDA = 0.5  # diverse: weight of relevance against redundancy
MMR_CANDIDATES = 5  # diverse: choose among this many times k nearest examples
EXAMPLES_HEADING = "Examples of tasks the team has answered, with the answer expected:"
_LABELLED = (CHOICES, TAXONOMY, RATING, NUMBER, PAIRWISE)  # outputs whose value says which "class" a task is


@dataclass(frozen=True)
class Example:
    task_id: int
    data_digest: str
    text: str  # the task's content as the model reads it (``messages.task_text``)
    answer: dict[str, Any]  # the ground truth in the answer schema's shape: control name → value
    label: str  # what the task is an example of, for balancing: its labels, as JSON


def _shown(output: Output, data: Mapping[str, Any]) -> dict[str, str]:
    """Stored label → the label as the model names it."""
    return {option.label: option.shown for option in output.options_for(data)}


def _value(output: Output, regions: list[dict[str, Any]], data: Mapping[str, Any]) -> Any:
    """One control's ground truth as the model would write it (the inverse of ``answers.regions``)."""
    values = [region.get("value") or {} for region in regions if region.get("from_name") == output.name]
    if not values:
        return None
    kind = output.kind
    if kind == CHOICES:
        shown = _shown(output, data)
        labels = [shown.get(label, label) for value in values for label in value.get("choices") or []]
        return labels if output.multiple else (labels[0] if labels else None)
    if kind == TAXONOMY:
        separator = path_separator(output)
        paths = {tuple(stored): separator.join(shown) for shown, stored in taxonomy_nodes(output, output.options)}
        return [
            paths.get(tuple(path), separator.join(path)) for value in values for path in value.get("taxonomy") or []
        ]
    if kind in (SPANS, PARAGRAPH_SPANS):
        shown = _shown(output, data)
        key = output.control.tag.lower()
        spans = []
        for value in sorted(values, key=lambda item: (str(item.get("start")), item.get("startOffset") or 0)):
            label = (value.get(key) or value.get("labels") or [None])[0]
            item: dict[str, Any] = {"text": value.get("text"), "label": shown.get(label, label)}
            if kind == PARAGRAPH_SPANS:
                item = {"paragraph": int(value.get("start") or 0), **item}
            else:
                item["start"] = value.get("start")
            spans.append(item)
        return spans
    if kind == RATING:
        return values[0].get("rating")
    if kind == NUMBER:
        return values[0].get("number")
    if kind == PAIRWISE:
        return values[0].get("selected")
    if kind == TEXT:
        texts = [text for value in values for text in value.get("text") or [] if isinstance(text, str)]
        return texts[0] if len(texts) == 1 else (texts or None)
    return None


def example_answer(spec: LabelingSpec, data: Mapping[str, Any], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """The ground truth as the answer object: every output control, null where the team gave nothing."""
    return {output.name: _value(output, truth, data) for output in spec.outputs}


def _answered(answer: Mapping[str, Any]) -> bool:
    return any(value not in (None, [], "") for value in answer.values())


def _label(spec: LabelingSpec, answer: Mapping[str, Any]) -> str:
    labelled = {output.name: answer[output.name] for output in spec.outputs if output.kind in _LABELLED}
    if not any(value not in (None, []) for value in labelled.values()):  # spans only: the set of their labels
        labelled = {
            output.name: sorted({str(span.get("label")) for span in answer[output.name] or []})
            for output in spec.outputs
            if output.kind in (SPANS, PARAGRAPH_SPANS)
        }
    return json.dumps(labelled, sort_keys=True, ensure_ascii=False)


def examples_from(spec: LabelingSpec, tasks: Iterable[GroundTruthTask]) -> list[Example]:
    """The pool's examples, by task id: tasks whose ground truth answers none of the outputs, or whose data the
    config cannot read, are left out."""
    examples = []
    for task in sorted(tasks, key=lambda item: item.id):
        answer = example_answer(spec, task.data, task.truth)
        if not _answered(answer):
            continue
        try:
            text = task_text(spec, task.data)
        except TaskError:
            continue
        examples.append(Example(task.id, data_digest(task.data), text, answer, _label(spec, answer)))
    return examples


def examples_digest(examples: Sequence[Example]) -> str:
    """What the examples are, in 12 hex characters: part of the model version."""
    canonical = json.dumps([[e.task_id, e.text, e.answer] for e in examples], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _shuffle_key(task_id: int) -> str:
    """A fixed pseudo-random order of a label's examples, so ``fixed`` does not take the oldest tasks only."""
    return hashlib.sha256(str(task_id).encode()).hexdigest()


@dataclass
class ExamplePool:
    """The examples of one pool and the index that finds the nearest ones (built once per pool and config, and
    per embedder)."""

    examples: list[Example]
    digest: str = field(init=False)
    _rankers: dict[str, Ranker] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.digest = examples_digest(self.examples)

    def ranker(self, embed: Embed | None = None) -> Ranker:
        """BM25 over stemmed words, or with ``embed`` the cosine of the examples' embeddings: built once each."""
        scope = embed.scope if embed else "bm25"
        if scope not in self._rankers:  # two threads may both build it: the same index, kept once
            texts = [example.text for example in self.examples]
            self._rankers[scope] = VectorRanker(texts, embed) if embed else BM25(texts, analyzer=stems)
        return self._rankers[scope]

    @cached_property
    def fixed_order(self) -> list[int]:
        """Every example, label-balanced: one of each label in turn (the most frequent labels first)."""
        by_label: dict[str, list[int]] = {}
        for position, example in enumerate(self.examples):
            by_label.setdefault(example.label, []).append(position)
        queues = sorted(by_label.items(), key=lambda item: (-len(item[1]), item[0]))
        lists = [
            sorted(positions, key=lambda p: _shuffle_key(self.examples[p].task_id)) for _label, positions in queues
        ]
        order: list[int] = []
        for depth in range(max((len(items) for items in lists), default=0)):
            order.extend(items[depth] for items in lists if depth < len(items))
        return order

    def choose(
        self, k: int, strategy: Strategy, text: str, task_id: int | None, digest: str, embed: Embed | None = None
    ) -> list[Example]:
        """The k examples for a task (its content as the model reads it, its id, its data's digest); ``embed``:
        rank by those embeddings instead of BM25."""
        if k <= 0:
            return []

        def allowed(position: int) -> bool:
            example = self.examples[position]
            return example.task_id != task_id and example.data_digest != digest

        if strategy == "fixed":
            return [self.examples[p] for p in self._fixed(k, allowed)]
        index = self.ranker(embed)
        scores = index.scores(text)
        nearest = sorted((p for p in range(len(self.examples)) if allowed(p)), key=lambda p: (-scores[p], p))
        if strategy == "similar":
            return [self.examples[p] for p in nearest[:k]]
        return [self.examples[p] for p in self._diverse(index, nearest[: k * MMR_CANDIDATES], scores, k)]

    def _fixed(self, k: int, allowed: Callable[[int], bool]) -> list[int]:
        """The first k of ``fixed_order``; a slot the task may not see takes the next spare example of the same
        label (else the next spare one), so the other slots stay as every other task sees them."""
        chosen = self.fixed_order[:k]
        spares = [p for p in self.fixed_order[k:] if allowed(p)]
        for slot, position in enumerate(chosen):
            if allowed(position):
                continue
            label = self.examples[position].label
            spare = next((p for p in spares if self.examples[p].label == label), spares[0] if spares else None)
            chosen[slot] = spare if spare is not None else -1
            if spare is not None:
                spares.remove(spare)
        return [position for position in chosen if position >= 0]

    def _diverse(self, index: Ranker, candidates: list[int], scores: list[float], k: int) -> list[int]:
        """Maximal marginal relevance; each candidate's redundancy (its highest with a chosen example) is updated
        as examples are chosen, so choosing k costs k queries of the index, not k² comparisons a candidate."""
        top = max((scores[p] for p in candidates), default=0.0) or 1.0
        redundancy = dict.fromkeys(candidates, 0.0)
        chosen: list[int] = []
        left = list(candidates)
        while left and len(chosen) < k:
            best = max(left, key=lambda p: (MMR_LAMBDA * scores[p] / top - (1 - MMR_LAMBDA) * redundancy[p], -p))
            chosen.append(best)
            left.remove(best)
            label = self.examples[best].label
            likeness = index.scores(self.examples[best].text)  # the chosen one as the query
            most = max(likeness) or 1.0
            for position in left:
                same = self.examples[position].label == label
                redundancy[position] = max(redundancy[position], 1.0 if same else likeness[position] / most)
        return chosen


def answer_text(answer: Mapping[str, Any], structured: bool) -> str:
    """The answer as the model must write it: the JSON object, or in text mode plain text (one control's value
    alone, several controls a line each)."""
    if structured:
        return json.dumps(answer, ensure_ascii=False)

    def plain(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(plain(item) for item in value)
        if isinstance(value, dict):
            return json.dumps(value, ensure_ascii=False)
        return str(value)

    given = {name: value for name, value in answer.items() if value not in (None, [], "")}
    if len(given) == 1:
        return plain(next(iter(given.values())))
    return "\n".join(f"{name}: {plain(value)}" for name, value in given.items())


def render_examples(examples: Sequence[Example], structured: bool) -> str | None:
    """The examples as one block of text for the messages, None for none."""
    if not examples:
        return None
    parts = [EXAMPLES_HEADING]
    for number, example in enumerate(examples, 1):
        parts.append(
            f"### Example {number}\nInput:\n{example.text}\nAnswer:\n{answer_text(example.answer, structured)}"
        )
    parts.append("(end of examples)")
    return "\n\n".join(parts)
