"""Large label sets: each task is offered only the labels most like its text.

A ``Choices`` or ``Taxonomy`` with thousands of values does not fit a strict schema (OpenAI takes at most
1,000 enum values in one, see ``strict.py``) and costs their tokens on every call.  Above the project's
``LABEL_SELECTION_THRESHOLD``, each task gets the ``LABEL_SELECTION_K`` values whose words (the label as
shown, its alias and its hint; for a Taxonomy node, those of every node on its path) are most similar to the
task's text by BM25 (``similarity.py``), as autolabel's ``label_selection`` narrows its candidates; with
SIMILARITY_EMBEDDINGS_MODEL, by the cosine similarity of their embeddings (``VectorRanker``, with the ``Embed``
the caller hands in: the vectors come from the provider, through ``shared.adapters.embeddings``).

``narrowed`` gives the task's view of the config: the same spec with those controls' options cut down to the
candidates.  Everything downstream reads that view (the schema, the options listed with the task, the prose
reader, the regions), so an answer outside the candidates is refused like any label the config lacks.
Candidates keep config order.  A Taxonomy keeps the path to each chosen node; where inner nodes are
selectable (no ``leafsOnly``), those on the path count among the k, so the model sees the branch it picks from.
Only values that share a word with the task (with embeddings: a cosine above 0) are candidates: a task that
resembles none of them is offered none (the control is left out of its schema and stays empty) rather than k
arbitrary ones it would have to pick from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.domain.config import LabelSelection
from shared.domain.errors import TaskError
from shared.domain.labeling.schema import choice_list, selectable_paths
from shared.domain.labeling.spec import CHOICES, TAXONOMY, LabelingSpec, Option, Output
from shared.domain.prompts.messages import object_texts
from shared.domain.prompts.similarity import BM25, Embed, Ranker, VectorRanker

T = TypeVar("T")

NARROWED_KINDS = (CHOICES, TAXONOMY)

Path = tuple[Option, ...]  # a value as the options leading to it: one option for Choices, a Taxonomy node's path


@dataclass(frozen=True)
class _LabelIndex:
    """One control's values, how many the model would choose from, and their index (BM25 or embeddings)."""

    values: list[Path]
    count: int
    index: Ranker


def selects(spec: LabelingSpec, rule: LabelSelection) -> bool:
    """Whether ``rule`` may narrow a control of this config (one over the threshold, or with dynamic options):
    then the rule is part of what the model is told, and of the model version."""
    return any(
        output.kind in NARROWED_KINDS
        and (output.dynamic_field is not None or _value_count(output, output.options) > rule.threshold)
        for output in spec.outputs
    )


def narrowed(
    spec: LabelingSpec, data: Mapping[str, Any], rule: LabelSelection, embed: Embed | None = None
) -> LabelingSpec:
    """The config as this task sees it: every control over the threshold offers its k candidates for the task's
    text.  The spec itself when nothing is narrowed.  ``embed``: the rule's embeddings model, as the project's
    endpoint serves it (required when the rule names one)."""
    if rule.embeddings_model and embed is None:
        raise ValueError("label selection by embeddings needs the embeddings (embed)")
    outputs: list[Output] = []
    query: str | None = None
    for output in spec.outputs:
        label_index = _label_index(spec, output, data, rule, embed) if output.kind in NARROWED_KINDS else None
        if label_index is None:
            outputs.append(output)
            continue
        if query is None:
            query = _task_text(spec, data)
        chosen = _chosen(output, label_index, label_index.index.rank(query), rule.k)
        options = _pruned(output.options_for(data), chosen)
        outputs.append(
            dataclasses.replace(output, options=options, dynamic_field=None, narrowed_from=label_index.count)
        )
    if query is None:
        return spec
    return dataclasses.replace(spec, outputs=tuple(outputs), derived={})


def _task_text(spec: LabelingSpec, data: Mapping[str, Any]) -> str:
    """What the candidates are ranked against: the text of every object the model reads.  A task whose text
    cannot be read ranks against nothing (no candidates): composing its messages fails it with the reason."""
    try:
        return "\n".join(object_texts(spec, data).values())
    except TaskError:
        return ""


def _value_count(output: Output, options: Sequence[Option]) -> int:
    return len(choice_list(output, options))


def _values(output: Output, options: Sequence[Option]) -> list[Path]:
    """The values a control offers, each as its path of options (a Taxonomy's selectable nodes)."""
    return [(option,) for option in options] if output.kind == CHOICES else selectable_paths(output, options)


def _words(path: Path) -> str:
    return " ".join(
        part for option in path for part in dict.fromkeys((option.shown, option.label, option.hint)) if part
    )


def _label_index(
    spec: LabelingSpec, output: Output, data: Mapping[str, Any], rule: LabelSelection, embed: Embed | None
) -> _LabelIndex | None:
    """The control's index when it offers more than the rule's threshold of values, else None.  For options the
    config lists, the count and the index are worked out once per config (every task asks twice) and embedder;
    dynamic ones per task."""
    options = output.options_for(data)
    count = _derived(spec, output, "value_count", lambda: _value_count(output, options))
    if count <= rule.threshold:
        return None
    use = embed if rule.embeddings_model else None

    def build() -> _LabelIndex:
        values = _values(output, options)
        texts = [_words(path) for path in values]
        return _LabelIndex(values, count, VectorRanker(texts, use) if use else BM25(texts))

    return _derived(spec, output, f"label_index:{use.scope if use else 'bm25'}", build)


def _derived(spec: LabelingSpec, output: Output, what: str, work: Callable[[], T]) -> T:
    """``work()``, kept with the config for a control whose options it lists."""
    if output.dynamic_field is not None:
        return work()
    key = f"label_selection:{what}:{output.name}"
    if key not in spec.derived:
        spec.derived[key] = work()
    kept: T = spec.derived[key]  # what ``work()`` made for this key earlier
    return kept


def _key(path: Path) -> tuple[str, ...]:
    return tuple(option.label for option in path)


def _chosen(output: Output, label_index: _LabelIndex, ranking: Sequence[int], k: int) -> set[tuple[str, ...]]:
    """The best-ranked values (as paths of stored labels) up to k, with the selectable nodes on their paths."""
    selectable = {_key(path) for path in label_index.values}
    chosen: set[tuple[str, ...]] = set()
    for position in ranking:
        key = _key(label_index.values[position])
        added = {key[:depth] for depth in range(1, len(key) + 1)} & selectable if output.kind == TAXONOMY else {key}
        if len(chosen | added) > k:
            continue
        chosen |= added
        if len(chosen) == k:
            break
    return chosen


def _pruned(options: Sequence[Option], chosen: set[tuple[str, ...]], above: tuple[str, ...] = ()) -> tuple[Option, ...]:
    """``options`` cut down to the chosen values and the nodes leading to them, in config order."""
    kept: list[Option] = []
    for option in options:
        key = (*above, option.label)
        children = _pruned(option.children, chosen, key)
        if key in chosen or children:
            kept.append(dataclasses.replace(option, children=children))
    return tuple(kept)
