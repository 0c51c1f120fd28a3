"""Label selection on thousands of labels: what narrowing costs in CPU and what it saves in input tokens.

For the 5,000-value Taxonomy and the 3,000-value Choices of the tests (``tests/large_label_sets.py``): the time to
build a config's index (once per process), the CPU time to narrow one task (texts of about 300 words naming
values), and the input tokens of one ``json_schema`` request (messages and schema, counted offline as the
estimates count them) with the default rule and with every label sent.  Pure CPU in this process.

``python -m bench.label_selection``
"""

from __future__ import annotations

import statistics
import time

from shared.domain.config import LabelSelection, load_settings
from shared.domain.estimation.tokens import count_request_tokens
from shared.domain.labeling.schema import answer_instructions, answer_schema, task_instructions
from shared.domain.labeling.spec import parse_labeling_config
from shared.domain.prompts.label_selection import narrowed
from shared.domain.prompts.messages import compose_messages
from tests.large_label_sets import large_choices, large_taxonomy, own_word

TASKS = 200
MODEL = "gpt-4o-mini"
EVERY_LABEL = LabelSelection(threshold=10**9, k=1)


def _texts(values: list) -> list[str]:
    """Texts of about 300 words, each naming one value three times and 40 others once."""
    texts = []
    for task in range(TASKS):
        named = own_word(values[(task * 37) % len(values)])
        others = " ".join(own_word(values[(task * 53 + i * 11) % len(values)]) for i in range(40))
        filler = " ".join(["the report goes on about what happened and why"] * 25)
        texts.append(f"{named} {filler} {named}, {others}, {named}.")
    return texts


def _request_tokens(config: str, text: str, rule: LabelSelection) -> int:
    spec = narrowed(parse_labeling_config(config, "prompt", max_bytes=len(config)), {"text": text}, rule)
    data = {"text": text}
    options = load_settings().defaults.prompt
    messages = compose_messages(
        spec,
        options,
        "Label it",
        data,
        instructions=answer_instructions(spec),
        task_notes=task_instructions(spec, data),
    )
    schema = {"type": "json_schema", "json_schema": {"name": "annotation", "schema": answer_schema(spec, data)}}
    return count_request_tokens(messages, MODEL, schema).tokens


def main() -> None:
    rule = load_settings().defaults.label_selection
    print(f"label selection, default rule (threshold {rule.threshold}, k {rule.k}); {TASKS} tasks per config")
    print(f"{'config':<24}{'index build ms':>16}{'narrow ms (median)':>20}{'tokens, k':>12}{'tokens, all':>13}")
    for name, (config, values) in (
        ("5,000-value Taxonomy", large_taxonomy()),
        ("3,000-value Choices", large_choices()),
    ):
        texts = _texts(values)
        spec = parse_labeling_config(config, "prompt", max_bytes=len(config))
        started = time.process_time()
        narrowed(spec, {"text": texts[0]}, rule)  # builds the index
        build = (time.process_time() - started) * 1000
        times = []
        for text in texts:
            started = time.process_time()
            narrowed(spec, {"text": text}, rule)
            times.append((time.process_time() - started) * 1000)
        with_k = _request_tokens(config, texts[0], rule)
        with_all = _request_tokens(config, texts[0], EVERY_LABEL)
        print(f"{name:<24}{build:>16.0f}{statistics.median(times):>20.1f}{with_k:>12,}{with_all:>13,}")


if __name__ == "__main__":
    main()
