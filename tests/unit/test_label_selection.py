"""Large label sets narrowed per task: which candidates, the schema and messages built from them, answers outside
them refused, and the model version."""

import pytest

from shared.domain.answers.output_modes import AnswerFormatError
from shared.domain.answers.reading import read_prediction
from shared.domain.answers.regions import regions_from_answers
from shared.domain.config import LabelSelection, load_settings
from shared.domain.errors import ConfigError
from shared.domain.labeling.schema import answer_instructions, answer_schema, choice_list, task_instructions
from shared.domain.labeling.spec import parse_labeling_config
from shared.domain.labeling.strict import MAX_ENUM_VALUES
from shared.domain.prompts.label_selection import narrowed, selects
from shared.domain.prompts.messages import task_labels
from shared.domain.versions import model_version
from tests.fakes.openai_server.strict import strict_problems
from tests.large_label_sets import large_choices, large_taxonomy, own_word
from tests.unit.test_similarity import GivenVectors

RULE = LabelSelection(threshold=4, k=2)


def spec_with(controls: str):
    return parse_labeling_config(
        f'<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/>{controls}</View>', "prompt"
    )


SPORTS_CONTROLS = (
    '<Choices name="sport" toName="text">'
    '<Choice value="Tennis"/><Choice value="Golf"/><Choice value="Sailing" hint="boats and regattas"/>'
    '<Choice value="Cycling" alias="bike"/><Choice value="Rowing"/></Choices>'
)
SPORTS = spec_with(SPORTS_CONTROLS)


def candidates(spec, text, rule=RULE, name=None):
    view = narrowed(spec, {"text": text}, rule)
    output = view.output(name or spec.outputs[0].name)
    return choice_list(output, output.options_for({"text": text}))


def test_a_small_label_set_is_left_as_it_is():
    assert narrowed(SPORTS, {"text": "tennis or golf"}, LabelSelection(threshold=5, k=2)) is SPORTS
    assert not selects(SPORTS, LabelSelection(threshold=5, k=2))


def test_above_the_threshold_the_k_most_similar_labels_remain_in_config_order():
    assert selects(SPORTS, RULE)
    assert candidates(SPORTS, "Rowing and golf at dawn") == ["Golf", "Rowing"]
    # the hint and the alias are the label's words too
    assert candidates(SPORTS, "A regatta of small boats") == ["Sailing"]  # the only one with a word in common
    assert candidates(SPORTS, "my bike broke, so golf") == ["Golf", "Cycling"]


def test_the_narrowed_control_lists_its_candidates_with_the_task_not_in_the_instructions():
    view = narrowed(SPORTS, {"text": "tennis or golf"}, RULE)
    assert answer_instructions(view) == (
        "Answer with one JSON object that has these fields:\n"
        '- "sport": the label that applies to `text`: one of the options listed with the task, or null if none '
        "applies"
    )
    assert answer_instructions(view) == answer_instructions(narrowed(SPORTS, {"text": "rowing"}, RULE))
    assert task_instructions(view, {"text": "tennis or golf"}) == "Options for \"sport\": ['Tennis', 'Golf']"
    assert task_labels(view, {"text": "tennis or golf"}) == ["Tennis", "Golf"]
    schema = answer_schema(view, {"text": "tennis or golf"})
    assert schema["properties"]["sport"]["anyOf"][0]["enum"] == ["Tennis", "Golf"]
    assert answer_schema(SPORTS, {})["properties"]["sport"]["anyOf"][0]["enum"] == [
        "Tennis",
        "Golf",
        "Sailing",
        "Cycling",
        "Rowing",
    ]  # the config's own schema is untouched (it is cached with the config)


def test_an_answer_outside_the_candidates_is_refused_in_every_mode():
    data = {"text": "tennis or golf"}
    view = narrowed(SPORTS, data, RULE)
    structured = read_prediction(view, data, None, [{"content": '{"sport": "Rowing"}'}], "json_schema", 0.8)
    assert structured.filled.regions == []
    assert structured.notes == ["sport: 'Rowing' is not one of ['Tennis', 'Golf']; read as prose: None"]
    with pytest.raises(AnswerFormatError, match="nothing in the model's answer fits this labeling config: 'Rowing'"):
        read_prediction(view, data, None, [{"content": "Rowing"}], "text", 0.8)  # as prose naming no label fails
    kept = regions_from_answers(view, [{"sport": "Golf"}], data, None)
    assert [region["value"] for region in kept.regions] == [{"choices": ["Golf"]}]


def test_a_task_that_resembles_no_label_is_offered_none_and_the_control_stays_empty():
    data = {"text": "Nothing in common here"}
    view = narrowed(SPORTS, data, RULE)
    assert "sport" not in answer_schema(view, data)["properties"]
    assert task_instructions(view, data) is None
    filled = regions_from_answers(view, [{"sport": "Golf"}], data, None)  # a model that answers anyway
    assert filled.regions == []
    assert filled.dropped == ["sport: none of its 5 labels shares a word with the task's text (label selection)"]


def test_dynamic_options_are_narrowed_per_task():
    spec = spec_with('<Choices name="pick" toName="text" value="$options"/>')
    options = [{"value": name} for name in ("Apple", "Pear", "Plum", "Fig", "Kiwi")]
    assert selects(spec, LabelSelection(threshold=1000, k=2))  # the rule may apply: it is in the version
    assert candidates(spec, "a ripe fig", name="pick") == []  # no options in this task's data
    view = narrowed(spec, {"text": "a ripe fig", "options": options}, RULE)
    output = view.output("pick")
    assert [option.label for option in output.options] == ["Fig"]
    assert output.narrowed_from == 5 and output.dynamic_field is None


NESTED = """<Taxonomy name="topic" toName="text"{attrs}>
  <Choice value="Sport"><Choice value="Tennis"/><Choice value="Golf"/></Choice>
  <Choice value="Travel"><Choice value="Flights"/><Choice value="Hotels" hint="rooms to stay"/></Choice>
  <Choice value="Food"/>
</Taxonomy>"""


def test_a_taxonomy_keeps_the_chosen_nodes_with_the_selectable_nodes_on_their_paths():
    spec = spec_with(NESTED.format(attrs=""))  # 7 selectable values: every node
    rule = LabelSelection(threshold=4, k=4)
    # Hotels (its hint) and Golf match; each brings its parent, which is a value of its own
    assert candidates(spec, "A room to stay near the golf course", rule) == [
        "Sport / Golf",
        "Sport",
        "Travel / Hotels",
        "Travel",
    ]


def test_a_leafs_only_taxonomy_keeps_the_chosen_leaves_under_their_branches():
    spec = spec_with(NESTED.format(attrs=' leafsOnly="true"'))
    rule = LabelSelection(threshold=4, k=2)
    view = narrowed(spec, {"text": "A room to stay near the golf course"}, rule)
    assert choice_list(view.output("topic"), view.output("topic").options) == ["Sport / Golf", "Travel / Hotels"]
    filled = regions_from_answers(view, [{"topic": ["Travel / Hotels", "Sport / Tennis"]}], {}, None)
    assert [region["value"] for region in filled.regions] == [{"taxonomy": [["Travel", "Hotels"]]}]
    assert filled.dropped == ["topic: 'Sport / Tennis' is not one of ['Sport / Golf', 'Travel / Hotels']"]


DEFAULTS = load_settings().defaults.label_selection


@pytest.mark.parametrize("build", [large_choices, large_taxonomy], ids=["3000 choices", "5000-value taxonomy"])
def test_thousands_of_values_give_a_schema_within_the_strict_limits_with_the_named_value(build):
    config, values = build()
    spec = parse_labeling_config(config, "prompt", max_bytes=len(config))
    output = spec.outputs[0]
    assert len(choice_list(output, output.options)) in (3000, 5000)
    named = values[1234]
    named_path = " / ".join(named) if isinstance(named, list) else named
    others = ", ".join(own_word(value) for value in values[2000:2300])
    # a text that names 301 values, one of them three times: k candidates, that one among them
    text = f"The report is about {own_word(named)} ({own_word(named)}, {own_word(named)}), and also {others}."

    view = narrowed(spec, {"text": text}, DEFAULTS)
    schema = answer_schema(view, {"text": text})

    assert strict_problems(schema) == []
    enum = schema["properties"][output.name]["anyOf"][0]
    enum = enum.get("items", enum)["enum"]
    assert named_path in enum and len(enum) == DEFAULTS.k <= MAX_ENUM_VALUES
    assert named_path in task_instructions(view, {"text": text})
    assert named_path not in answer_instructions(view)
    # without the selection the enum does not fit and is dropped: the model would not be held to the labels
    full = answer_schema(spec, {})["properties"][output.name]["anyOf"][0]
    assert "enum" not in full.get("items", full)


def test_the_model_version_covers_the_rule_where_it_narrows():
    config = load_settings().defaults
    other_k = config.model_copy(update={"label_selection": LabelSelection(threshold=250, k=20)})
    large, _values = large_choices(300)
    small = large_choices(30)[0]
    assert model_version(config, large, None) != model_version(other_k, large, None)
    assert model_version(config, small, None) == model_version(other_k, small, None)


def test_k_may_not_exceed_the_threshold():
    with pytest.raises(ConfigError, match="LABEL_SELECTION_K=300: Value error, must be at most LABEL_SELECTION"):
        load_settings(label_selection_threshold=250, label_selection_k=300)


def test_with_an_embeddings_model_the_labels_nearest_by_embeddings_are_the_candidates():
    by_meaning = GivenVectors(
        {
            "Tennis": [0.0, 0.0, 1.0, 0.0],
            "Golf": [0.0, 0.0, 0.0, 1.0],
            "Sailing boats and regattas": [1.0, 0.0, 0.0, 0.0],
            "Cycling bike": [0.0, 1.0, 0.0, 0.0],
            "Rowing": [0.8, 0.0, 0.2, 0.0],
            "a ship crossed the bay": [0.9, 0.1, 0.0, 0.0],
        }
    )
    rule = RULE.model_copy(update={"embeddings_model": "text-embedding-3-small"})
    spec = spec_with(SPORTS_CONTROLS)  # its own spec: the index is kept with the config
    assert candidates(spec, "a ship crossed the bay") == []  # by words: nothing in common
    view = narrowed(spec, {"text": "a ship crossed the bay"}, rule, by_meaning)
    output = view.output("sport")
    assert choice_list(output, output.options) == ["Sailing", "Rowing"]
    # the labels were embedded once for the config; each task's text on its own
    narrowed(spec, {"text": "a ship crossed the bay"}, rule, by_meaning)
    assert len([asked for asked in by_meaning.asked if len(asked) == 5]) == 1
    with pytest.raises(ValueError, match="needs the embeddings"):
        narrowed(spec, {"text": "a ship"}, rule)


def test_the_model_version_covers_the_embeddings_model_only_where_it_ranks():
    config = load_settings().defaults
    embedded = load_settings(similarity_embeddings_model="text-embedding-3-small").defaults
    large, _values = large_choices(300)
    small = large_choices(30)[0]
    assert model_version(config, large, None) != model_version(embedded, large, None)
    assert model_version(config, small, None) == model_version(embedded, small, None)
