"""Few-shot examples: the ground truth in the answer's form, no task its own example, the three strategies."""

from __future__ import annotations

import json

import pytest

from shared.domain.config import REFERENCE_PROMPT_TEMPLATE, PromptOptions, load_settings
from shared.domain.evaluation.ground_truth import GroundTruthTask
from shared.domain.labeling.spec import parse_labeling_config
from shared.domain.prompts.few_shot import (
    EXAMPLES_HEADING,
    ExamplePool,
    answer_text,
    example_answer,
    examples_digest,
    examples_from,
    render_examples,
)
from shared.domain.prompts.messages import compose_messages
from shared.domain.prompts.similarity import stems
from shared.domain.types import data_digest
from shared.domain.versions import model_version
from tests.conftest import labeling_config

CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text" editable="true"/>
  <Choices name="topic" toName="text" choice="single">
    <Choice value="Sport"/><Choice value="Cooking" alias="food"/><Choice value="Weather"/>
  </Choices>
</View>
"""
TOPIC_WORDS = {
    "Sport": ["football match", "tennis final", "marathon runners", "cycling race"],
    "Cooking": ["bread recipe", "pasta sauce", "roast chicken", "chocolate cake"],
    "Weather": ["heavy rain", "snow storm", "heat wave", "strong wind"],
}


def choice(label: str) -> list[dict]:
    return [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


@pytest.fixture
def spec():
    return parse_labeling_config(CONFIG, "prompt")


def corpus() -> list[GroundTruthTask]:
    """Twelve tasks, four per topic, each about one thing of its topic; ids 1..12."""
    tasks, task_id = [], 0
    for topic, things in TOPIC_WORDS.items():
        stored = "food" if topic == "Cooking" else topic
        for thing in things:
            task_id += 1
            tasks.append(GroundTruthTask(task_id, {"text": f"A note about the {thing} today."}, choice(stored)))
    return tasks


def test_the_ground_truth_becomes_the_answer_object_with_labels_as_the_model_names_them(spec):
    assert example_answer(spec, {"text": "x"}, choice("food")) == {"topic": "Cooking"}
    assert example_answer(spec, {"text": "x"}, []) == {"topic": None}


def test_every_output_kind_goes_back_to_the_answer_schema_shape():
    spec = parse_labeling_config(labeling_config("evaluation"), "prompt")
    truth = [
        {"from_name": "evals", "type": "taxonomy", "value": {"taxonomy": [["Bias", "Gender"], ["Toxicity", "Hate"]]}},
        {"from_name": "rating", "type": "rating", "value": {"rating": 4}},
        {"from_name": "response", "type": "textarea", "value": {"text": ["fine"]}},
    ]
    assert example_answer(spec, {"text": "t"}, truth) == {
        "response": "fine",
        "evals": ["Bias: Gender", "Toxicity: Hate"],
        "rating": 4,
    }


def test_spans_become_quotes_with_their_label_and_start():
    config = """<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/>
      <Labels name="ner" toName="text"><Label value="PER"/><Label value="ORG"/></Labels></View>"""
    spec = parse_labeling_config(config, "prompt")
    truth = [
        {"from_name": "ner", "type": "labels", "value": {"start": 9, "end": 13, "text": "ACME", "labels": ["ORG"]}},
        {"from_name": "ner", "type": "labels", "value": {"start": 0, "end": 3, "text": "Ann", "labels": ["PER"]}},
    ]
    assert example_answer(spec, {"text": "Ann joins ACME"}, truth) == {
        "ner": [{"text": "Ann", "label": "PER", "start": 0}, {"text": "ACME", "label": "ORG", "start": 9}]
    }


def test_the_answer_is_shown_as_json_or_in_text_mode_as_plain_text():
    assert answer_text({"topic": "Cooking", "response": None}, structured=True) == (
        '{"topic": "Cooking", "response": null}'
    )
    assert answer_text({"topic": "Cooking", "response": None}, structured=False) == "Cooking"
    assert answer_text({"a": ["x", "y"], "b": 3}, structured=False) == "a: x, y\nb: 3"


def test_tasks_without_an_answer_for_the_outputs_are_not_examples(spec):
    tasks = [*corpus(), GroundTruthTask(99, {"text": "only a prompt"}, [])]
    assert [example.task_id for example in examples_from(spec, tasks)] == list(range(1, 13))


@pytest.mark.parametrize("strategy", ["fixed", "similar", "diverse"])
def test_no_task_ever_gets_its_own_annotation_as_an_example(spec, strategy):
    pool = ExamplePool(examples_from(spec, corpus()))
    for task in corpus():
        for k in (1, 3, 11):
            chosen = pool.choose(k, strategy, task.data["text"], task.id, data_digest(task.data))
            assert len(chosen) == k
            assert task.id not in [example.task_id for example in chosen]
        # the same data under another id (a duplicate task) does not see that annotation either
        chosen = pool.choose(11, strategy, task.data["text"], 1000 + task.id, data_digest(task.data))
        assert task.id not in [example.task_id for example in chosen]


def test_the_fixed_set_is_label_balanced_and_the_same_for_every_task(spec):
    pool = ExamplePool(examples_from(spec, corpus()))
    unseen = {"text": "Something else entirely."}
    first = pool.choose(3, "fixed", unseen["text"], 500, data_digest(unseen))
    assert sorted(example.answer["topic"] for example in first) == ["Cooking", "Sport", "Weather"]
    for task_id in range(501, 520):  # any task outside the set gets the very same examples, in the same order
        other = {"text": f"another text {task_id}"}
        assert pool.choose(3, "fixed", other["text"], task_id, data_digest(other)) == first
    rebuilt = ExamplePool(examples_from(spec, list(reversed(corpus()))))
    assert rebuilt.choose(3, "fixed", unseen["text"], 500, data_digest(unseen)) == first


def test_a_task_of_the_fixed_set_gets_the_next_example_in_its_slot(spec):
    pool = ExamplePool(examples_from(spec, corpus()))
    first = pool.choose(3, "fixed", "x", 500, "none")
    member = first[1]
    data = next(task.data for task in corpus() if task.id == member.task_id)
    instead = pool.choose(3, "fixed", data["text"], member.task_id, data_digest(data))
    assert instead[0] == first[0] and instead[2] == first[2]
    assert instead[1] != member and instead[1].answer == member.answer  # the next one of the same label


def test_similar_finds_the_known_nearest_neighbours(spec):
    pool = ExamplePool(examples_from(spec, corpus()))
    # word variants (plural, -ing) still match after stemming; the nearest is the one sharing the rare words
    chosen = pool.choose(2, "similar", "Runners of the marathons and a cycling racer.", None, "none")
    assert [example.task_id for example in chosen] == [3, 4]  # marathon runners, cycling race
    chosen = pool.choose(1, "similar", "Tomorrow: snowing, a storm of snow.", None, "none")
    assert [example.task_id for example in chosen] == [10]  # snow storm


def test_stems_let_keyword_variants_meet():
    assert stems("Footballing, footballs and a Football") == ["footbal", "footbal", "and", "a", "footbal"]


def test_diverse_spreads_over_the_labels_where_similar_does_not(spec):
    pool = ExamplePool(examples_from(spec, corpus()))
    query = "A football match, a tennis final, a cycling race, then rain and bread."
    similar = pool.choose(3, "similar", query, None, "none")
    diverse = pool.choose(3, "diverse", query, None, "none")
    assert [example.answer["topic"] for example in similar] == ["Sport", "Sport", "Sport"]
    assert sorted(example.answer["topic"] for example in diverse) == ["Cooking", "Sport", "Weather"]


def test_fixed_examples_close_the_static_system_message_and_others_open_the_user_message(spec):
    pool = ExamplePool(examples_from(spec, corpus()))
    block = render_examples(pool.choose(2, "fixed", "x", None, "none"), structured=True)
    assert block.startswith(EXAMPLES_HEADING) and '{"topic": "Sport"}' in block
    options = PromptOptions(
        prompt_prefix="prompt",
        use_internal_template=True,
        template="Task Directive: {prompt}\n\nSource Text: {text}",
        default_prompt=None,
    )
    fixed = compose_messages(spec, options, "Which topic?", {"text": "the task"}, "instr", fixed_examples=block)
    assert fixed[0] == {"role": "system", "content": f"Task Directive: Which topic?\n\ninstr\n\n{block}"}
    assert fixed[1] == {"role": "user", "content": "Source Text: the task"}
    per_task = compose_messages(spec, options, "Which topic?", {"text": "the task"}, "instr", task_examples=block)
    assert per_task[0]["content"] == "Task Directive: Which topic?\n\ninstr"
    assert per_task[1]["content"] == f"{block}\n\nSource Text: the task"
    reference = options.model_copy(update={"template": REFERENCE_PROMPT_TEMPLATE})
    [only] = compose_messages(spec, reference, "p", {"text": "t"}, fixed_examples=None)
    assert only["role"] == "user"


def test_the_version_follows_k_the_strategy_and_the_pool(spec):
    settings = load_settings()
    off = settings.defaults
    assert model_version(off, CONFIG, "p", None) == model_version(off, CONFIG, "p")
    assert model_version(off, CONFIG, "p", "abc") == model_version(off, CONFIG, "p")  # off: no pool in the version
    on = off.model_copy(update={"few_shot": off.few_shot.model_copy(update={"k": 3})})
    pool = ExamplePool(examples_from(spec, corpus()))
    fewer = ExamplePool(examples_from(spec, corpus()[:-1]))
    relabelled = ExamplePool(
        examples_from(spec, [*corpus()[:-1], GroundTruthTask(12, corpus()[-1].data, choice("Sport"))])
    )
    versions = {
        model_version(off, CONFIG, "p"),
        model_version(on, CONFIG, "p", pool.digest),
        model_version(
            on.model_copy(update={"few_shot": on.few_shot.model_copy(update={"k": 4})}), CONFIG, "p", pool.digest
        ),
        model_version(
            on.model_copy(update={"few_shot": on.few_shot.model_copy(update={"strategy": "similar"})}),
            CONFIG,
            "p",
            pool.digest,
        ),
        model_version(on, CONFIG, "p", fewer.digest),
        model_version(on, CONFIG, "p", relabelled.digest),
    }
    assert len(versions) == 6
    assert examples_digest(pool.examples) == ExamplePool(examples_from(spec, corpus())).digest


def test_few_shot_settings_and_extra_params():
    from shared.domain.config import ExtraParams

    settings = load_settings(few_shot_examples=4, few_shot_strategy="similar")
    assert settings.defaults.few_shot.k == 4 and settings.defaults.few_shot.strategy == "similar"
    project = settings.for_project(ExtraParams.parse({"few_shot_examples": 0, "FEW_SHOT_STRATEGY": "diverse"}))
    assert (project.few_shot.k, project.few_shot.strategy) == (0, "diverse")
    assert load_settings().defaults.few_shot.k == 0  # off by default
    from shared.domain.errors import ConfigError

    with pytest.raises(ConfigError, match="few_shot_strategy"):
        ExtraParams.parse({"few_shot_strategy": "random"})
    assert json.dumps(project.few_shot.model_dump()) == '{"k": 0, "strategy": "diverse", "embeddings_model": null}'


def test_stems_are_right_from_many_threads_at_once():
    """A Snowball stemmer keeps state while it stems: shared unguarded by a worker's LLM threads it raised
    IndexError or gave wrong stems (found by bench/few_shot.py, 16 calls at once)."""
    import itertools
    import string
    from concurrent.futures import ThreadPoolExecutor

    import snowballstemmer

    codes = ["".join(letters) for letters in itertools.product(string.ascii_lowercase, repeat=3)][:4000]
    texts = [f"generalis{code}ations relativ{code}ities hope{code}fulness" for code in codes]
    own = snowballstemmer.stemmer("english")  # words never stemmed before, stemmed here one at a time
    expected = [[own.stemWord(word) for word in text.split()] for text in texts]
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(stems, texts)) == expected


class TopicVectors:
    """An ``Embed`` that places each text by the topic its words belong to (what an embeddings model gives
    beyond the words): a weather text is near every weather text, whatever words they share."""

    scope = "topics"

    def __call__(self, texts):
        weather = ("rain", "snow", "heat", "wind", "blizzard")
        return [[float(any(word in text for word in weather)), 0.1] for text in texts]


def test_with_embeddings_similar_and_diverse_rank_by_them(spec):
    pool = ExamplePool(examples_from(spec, corpus()))
    query = "Tomorrow: a blizzard."  # no word in common with any example but "a"
    by_words = pool.choose(4, "similar", query, None, "none")
    assert {example.answer["topic"] for example in by_words} != {"Weather"}
    by_embeddings = pool.choose(4, "similar", query, None, "none", TopicVectors())
    assert [example.answer["topic"] for example in by_embeddings] == ["Weather"] * 4
    diverse = pool.choose(2, "diverse", query, None, "none", TopicVectors())
    assert diverse[0].answer["topic"] == "Weather"
    assert pool.ranker(TopicVectors()) is pool.ranker(TopicVectors())  # built once per embedder


def test_the_version_covers_the_embeddings_model_where_examples_are_ranked():
    def version(strategy, embeddings_model=None):
        config = load_settings(
            few_shot_examples=3, few_shot_strategy=strategy, similarity_embeddings_model=embeddings_model
        ).defaults
        return model_version(config, CONFIG, "p", "pool")

    assert version("similar", "text-embedding-3-small") != version("similar")
    assert version("diverse", "text-embedding-3-small") != version("diverse")
    assert version("similar", "text-embedding-3-small") != version("similar", "text-embedding-3-large")
    assert version("fixed", "text-embedding-3-small") == version("fixed")  # fixed ranks nothing
