"""Few-shot examples: accuracy and input-token cost per 1,000 tasks, zero-shot against ``fixed``, ``similar`` and
``diverse``.

``.venv/bin/python -m bench.few_shot [--tasks 1000] [--pool 80]``

The corpus is built by code (``tests.fakes.topics``): short notes on four topics, each naming two keywords of
its topic in one of their variants ("footballs", "footballing") among filler every topic shares, never the
topic's name.  ``--pool`` notes are annotated with their topic in the recording Label Studio stand-in (over
HTTP); ``--tasks`` others are predicted.  The model is the tests' fake OpenAI server, answering as
``answer_from_examples`` does: the answer of the example sharing the most keywords with the note, and without
one the first label (so zero-shot is right on one topic in four).  It stands for a model that learns the
labels only from its examples; the figures compare strategies, not models.  Its usage follows its documented
rule (4 characters a token) and its ``cached_tokens`` OpenAI's prefix cache (the longest prefix shared with an
earlier request, from 1,024 tokens, in 128-token steps).

Each configuration predicts every task once through ``Predictor.predict`` (the code the workers and
``/predict`` run), with the pool read at the start as a job reads it, the LLM cache off, ``gpt-4o-mini``
priced with the built-in table (cached input at half price) and the default output mode (a JSON schema),
16 calls at once.
"""

from __future__ import annotations

import argparse
import json
import time

import fakeredis

from shared.adapters.store import ProjectSetup, Store
from shared.domain.config import Settings
from shared.domain.estimation.pricing import DEFAULT_PRICES, cost_usd
from shared.services import Services
from tests.fakes.label_studio import FakeLabelStudio
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.topics import CONFIG, PROMPT, answer_from_examples, choice, notes

MODEL = "gpt-4o-mini"
PROJECT = 61
TOKEN = "bench-token-0123456789abcdef"
CONFIGURATIONS = [("zero-shot", 0, "fixed")] + [
    (strategy, k, strategy) for k in (4, 32) for strategy in ("fixed", "similar", "diverse")
]


def predicted_topic(prediction: dict) -> str | None:
    for region in prediction.get("result") or []:
        if region.get("from_name") == "topic":
            return region["value"]["choices"][0]
    return None


def run(server: FakeOpenAIServer, label_studio: FakeLabelStudio, tasks: list, truth: dict, k: int, strategy: str):
    server.fake.reset()
    server.fake.reply = answer_from_examples
    settings = Settings(
        openai_api_key="bench-key",
        openai_base_url=f"{server.url}/v1",
        openai_model=MODEL,
        allowed_private_hosts=["127.0.0.1"],
        cache_ttl=0,
        llm_concurrency=16,  # the in-memory Redis stand-in takes fewer connections than a worker's default 100
        few_shot_examples=k,
        few_shot_strategy=strategy,
    )
    store = Store(fakeredis.FakeRedis(decode_responses=True), "bench-few-shot")
    services = Services.build(settings, store)
    store.save_setup(str(PROJECT), ProjectSetup(CONFIG, label_studio.url, TOKEN))
    store.save_prompt(str(PROJECT), PROMPT)
    started = time.perf_counter()
    ctx = services.projects.for_job(services.projects.context(str(PROJECT), None, None))
    outcomes = services.predictor.outcomes(ctx, tasks)
    seconds = time.perf_counter() - started
    services.close()
    right = sum(predicted_topic(outcome) == truth[task["id"]] for task, outcome in zip(tasks, outcomes, strict=True))
    usage = [completion.answer["usage"] for completion in server.fake.live_completions]
    tokens_in = sum(u["prompt_tokens"] for u in usage)
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usage)
    tokens_out = sum(u["completion_tokens"] for u in usage)
    per_thousand = 1000 / len(tasks)
    return {
        "configuration": "zero-shot" if k == 0 else f"{strategy}, k={k}",
        "accuracy": right / len(tasks),
        "calls": len(usage),
        "input_tokens_per_1000": round(tokens_in * per_thousand),
        "cached_tokens_per_1000": round(cached * per_thousand),
        "output_tokens_per_1000": round(tokens_out * per_thousand),
        "usd_per_1000": cost_usd(DEFAULT_PRICES[MODEL], tokens_in, tokens_out, cached) * per_thousand,
        "usd_per_1000_without_cache": cost_usd(DEFAULT_PRICES[MODEL], tokens_in, tokens_out) * per_thousand,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="notes to predict (default 1000)")
    parser.add_argument("--pool", type=int, default=80, help="annotated notes, the example pool (default 80)")
    args = parser.parse_args()
    corpus = notes(args.pool + args.tasks, seed=2026)
    pool = [
        {"id": i + 1, "data": {"text": note.text}, "annotations": [{"id": i + 1, "result": choice(note.topic)}]}
        for i, note in enumerate(corpus[: args.pool])
    ]
    tasks = [{"id": args.pool + i + 1, "data": {"text": note.text}} for i, note in enumerate(corpus[args.pool :])]
    truth = {task["id"]: note.topic for task, note in zip(tasks, corpus[args.pool :], strict=True)}
    rows = []
    with FakeOpenAIServer() as server, FakeLabelStudio(TOKEN) as label_studio:
        label_studio.add_project(PROJECT, CONFIG, pool + [{**task, "annotations": []} for task in tasks])
        for _name, k, strategy in CONFIGURATIONS:
            rows.append(run(server, label_studio, tasks, truth, k, strategy))
    print(f"{args.tasks} tasks, a pool of {args.pool} annotated notes, {MODEL} at the built-in prices")
    header = (
        f"{'configuration':18} {'accuracy':>8} {'input tok/1k':>13} {'cached/1k':>10} {'$/1k':>9} {'$/1k no cache':>14}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['configuration']:18} {row['accuracy']:8.3f} {row['input_tokens_per_1000']:13,} "
            f"{row['cached_tokens_per_1000']:10,} {row['usd_per_1000']:9.4f} {row['usd_per_1000_without_cache']:14.4f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
