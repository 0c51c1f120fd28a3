"""Scenario 6: readers of model output and span search on hostile answers, timed at sizes N, 2N and 4N.

Each case is one pathological input from issue #23's findings or from the search for more (runs of spaces,
a label named thousands of times, a compound label named piece by piece or a refusal repeated (issue #28), runs
of digits, deep brackets, a Markdown fence left open, many one-letter quotes in a long text or a dialogue,
thousands of nested spans to score, a long text to redact with many secrets).  The CPU time of one call (the
best of a few runs, ``time.process_time``) is taken at each size; a linear reader takes about 4 times as long at
4N as at N, a quadratic one 16 times: ``t(4N)/t(N) ≤ LINEAR_BOUND`` says the cost is linear.  Pure CPU in this
process: no server, no Redis.

``python -m bench.readers`` runs it alone; ``python -m bench.run --only readers`` within the suite.
"""

from __future__ import annotations

import random
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.domain.answers.json_in_text import json_object_in
from shared.domain.answers.prose import read_labels, read_rating
from shared.domain.answers.spans import UtteranceSpans, locate
from shared.domain.evaluation.scorers import ScoredSpan, _overlap_matches
from shared.redaction import SecretRegistry

LINEAR_BOUND = 5.0  # t(4N)/t(N): 4 for linear work, with room for noise and caches; quadratic work gives 16
LABELS = ["Positive", "Negative", "Neutral"]
COMPOUND_LABELS = ["World", "Sci/Tech", "Research and Development", "Other"]


@dataclass(frozen=True)
class Case:
    name: str
    size: int  # N, in characters of the answer (of the text, for span search and redaction; spans, for scoring)
    make: Callable[[int], Callable[[], Any]]  # size → the call to time


def _labels(answer: str, multiple: bool = False) -> Callable[[], Any]:
    return lambda: read_labels(answer, LABELS, multiple=multiple, threshold=0.8)


def _spans(size: int, hint: int | None) -> Callable[[], Any]:
    text = ("ab " * size)[:size]
    quotes = [("a", hint)] * (size // 200) + [("B", hint)] * (size // 200)  # 1,000 quotes in 100 KB
    return lambda: locate(text, quotes)


def _dialogue(size: int) -> Callable[[], Any]:
    texts = ["ab " * 33] * (size // 100)  # 1,000 utterances of 99 characters in 100 KB
    quotes = ["a", "b"] * (size // 100) + ["z"] * (size // 100)  # "z" is in none: looked for in every utterance

    def place_all() -> list[Any]:
        dialogue = UtteranceSpans(texts)
        return [dialogue.place(quote) for quote in quotes]

    return place_all


def _nested_spans(count: int) -> Callable[[], Any]:
    truth = [ScoredSpan((float(i),), (float(2 * count - i),), "X") for i in range(count)]  # each inside the last
    predicted = [ScoredSpan((float(count - 1),), (float(count + 1),), "X")] * count  # inside every true span
    return lambda: _overlap_matches(truth, predicted)


def _redaction(size: int) -> Callable[[], Any]:
    rng = random.Random(6)
    keys = ["sk-proj-" + "".join(rng.choice(string.ascii_letters) for _ in range(40)) for _ in range(300)]
    registry = SecretRegistry()
    registry.remember(*keys)
    line = f"task 12 of project 7 answered 401 for {keys[5][:16]}… and base64 of nothing here; "
    text = (line * (size // len(line) + 1))[:size]
    return lambda: registry.redact(text)


CASES = [
    Case("spaces between two words (`read_labels`)", 20_000, lambda n: _labels("a" + " " * n + "b")),
    Case("spaces between two labels, multiple choice", 20_000,
         lambda n: _labels("Positive" + " " * n + ", Negative", multiple=True)),
    Case("one label named n/9 times", 90_000, lambda n: _labels("positive " * (n // 9))),
    Case("two labels joined by 'or' n/22 times", 88_000, lambda n: _labels("positive or negative, " * (n // 22))),
    Case("a compound label named piece by piece n/23 times", 92_000, lambda n: lambda: read_labels(
        "science and technology " * (n // 23), COMPOUND_LABELS, multiple=True, threshold=0.8)),
    Case("a refusal n/12 times, read as the none/other choice", 96_000, lambda n: lambda: read_labels(
        "none of the " * (n // 12), COMPOUND_LABELS, multiple=False, threshold=0.8)),
    Case("digits (`read_rating`)", 100_000, lambda n: lambda: read_rating("9" * n)),
    Case("`[` n times (RecursionError before)", 100_000, lambda n: _labels("[" * n)),
    Case("`[` 500 times, then a long unclosed list", 100_000, lambda n: _labels("[" * 500 + "1," * (n // 2))),
    Case("an open fence, then spaces (`json_object_in`)", 100_000, lambda n: lambda: json_object_in("```" + " " * n)),
    Case("```` ```json\\n{ ```` n/9 times", 90_000, lambda n: lambda: json_object_in("```json\n{" * (n // 9))),
    Case("quotes `a`/`B` 1 per 100 characters (`locate`)", 100_000, lambda n: _spans(n, None)),
    Case("the same with a start hint mid-text", 100_000, lambda n: _spans(n, n // 2)),
    Case("quotes in a dialogue of n/100 utterances (ParagraphLabels)", 100_000, _dialogue),
    Case("N nested true and predicted spans scored for overlap", 20_000, _nested_spans),
    Case("redaction, 300 secrets remembered", 1_000_000, _redaction),
]  # fmt: skip


def _cpu_seconds(call: Callable[[], Any], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        call()
        best = min(best, time.process_time() - started)
    return best


def run(stack: Any = None, quick: bool = True) -> dict[str, Any]:
    """Each case at N, 2N and 4N; ``stack`` is unused (the suite's driver passes one to every scenario)."""
    runs = 3 if quick else 7
    cases = []
    for case in CASES:
        seconds = [_cpu_seconds(case.make(case.size * factor), runs) for factor in (1, 2, 4)]
        ratio = seconds[2] / seconds[0] if seconds[0] > 0 else None
        cases.append({"case": case.name, "size": case.size, "seconds": seconds, "ratio_4n": ratio,
                      "linear": ratio is not None and ratio <= LINEAR_BOUND})  # fmt: skip
    return {"scenario": "readers", "runs_per_size": runs, "linear_bound": LINEAR_BOUND, "cases": cases}


def table(result: dict[str, Any]) -> str:
    from bench.report import table as markdown_table  # report lists this table among the suite's: import late

    rows = [
        [
            item["case"],
            f"{item['size']:,}",
            *(f"{1000 * seconds:.1f} ms" for seconds in item["seconds"]),
            "—" if item["ratio_4n"] is None else f"{item['ratio_4n']:.1f}",
            "holds" if item["linear"] else "MISSED",
        ]
        for item in result["cases"]
    ]
    headers = ["case", "N", "t(N)", "t(2N)", "t(4N)", "t(4N)/t(N)", f"≤ {result['linear_bound']:g}"]
    return markdown_table(headers, rows)


if __name__ == "__main__":
    outcome = run(quick="--full" not in sys.argv[1:])
    print(table(outcome))
    sys.exit(0 if all(item["linear"] for item in outcome["cases"]) else 1)
