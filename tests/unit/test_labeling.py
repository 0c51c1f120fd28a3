import pytest

from shared.domain.labeling import LabelingConfigError, parse_labeling_config
from tests.conftest import labeling_config


def names(tags):
    return [tag.name for tag in tags]


def test_evaluation_config_fills_response_taxonomy_and_rating():
    spec = parse_labeling_config(labeling_config("evaluation"), "prompt")
    assert (spec.prompt.name, spec.source.tag, spec.source.name, spec.source_field) == (
        "prompt",
        "Text",
        "context",
        "text",
    )
    assert names(spec.text_outputs) == ["response"]
    assert spec.choices == ()
    assert [(output.name, output.kind) for output in spec.outputs] == [
        ("response", "text"),
        ("evals", "taxonomy"),
        ("rating", "rating"),
    ]
    assert spec.unfilled == ()


def test_sarcasm_config_has_textarea_and_choices():
    spec = parse_labeling_config(labeling_config("sarcasm"), "prompt")
    assert names(spec.text_outputs) == ["response"]
    assert names(spec.choices) == ["sentiment"]
    assert spec.labels == ["Sarcastic", "Not Sarcastic"]


def test_chat_config_reads_paragraphs():
    spec = parse_labeling_config(labeling_config("chat"), "prompt")
    assert (spec.source.tag, spec.source_field) == ("Paragraphs", "dialogue")
    assert names(spec.text_outputs) == ["response"]


def test_receipts_config_reads_an_image():
    spec = parse_labeling_config(labeling_config("receipts"), "prompt")
    assert (spec.source.tag, spec.source_field) == ("Image", "image")
    assert names(spec.text_outputs) == ["summarization-response"]
    assert names(spec.choices) == ["category"]
    assert len(spec.labels) == 21


def test_prompt_prefix_selects_the_prompt_textarea():
    config = """<View><HyperText name="page" value="$html"/>
      <TextArea name="notes" toName="page"/>
      <TextArea name="my-prompt-1" toName="page"/></View>"""
    spec = parse_labeling_config(config, "my-prompt")
    assert spec.prompt.name == "my-prompt-1"
    assert spec.source.tag == "HyperText"
    assert names(spec.text_outputs) == ["notes"]


def test_outputs_on_every_readable_object_count_and_every_object_is_listed():
    config = """<View><Text name="a" value="$a"/><Text name="b" value="$b"/>
      <TextArea name="prompt" toName="a"/><TextArea name="other" toName="b"/>
      <Choices name="c" toName="a"><Choice value="X"/></Choices></View>"""
    spec = parse_labeling_config(config, "prompt")
    assert names(spec.text_outputs) == ["other"]
    assert spec.output("other").target.name == "b"
    assert names(spec.choices) == ["c"]
    assert [(obj.name, obj.kind, obj.field) for obj in spec.objects] == [("a", "Text", "a"), ("b", "Text", "b")]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('<View><Text name="t" value="$t"/><TextArea name="answer" toName="t"/></View>', "has no prompt"),
        ('<View><Audio name="a" value="$a"/><TextArea name="prompt" toName="a"/></View>', "has no prompt"),
        ('<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/></View>', "nowhere to put the answer"),
        ("<View><Text name='t' value='$t'/>", "not valid XML"),
        ("", "labeling config is missing"),
        (None, "labeling config is missing"),
        (
            '<!DOCTYPE v [<!ENTITY x "xx">]><View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/>'
            '<TextArea name="r" toName="t"/><Header value="&x;"/></View>',
            "must not declare a DTD or entities",
        ),
    ],
)
def test_unusable_configs_say_what_is_missing(config, message):
    with pytest.raises(LabelingConfigError, match=message):
        parse_labeling_config(config, "prompt")


def test_missing_prompt_message_names_prefix_and_supported_tags():
    with pytest.raises(LabelingConfigError) as caught:
        parse_labeling_config('<View><Text name="t" value="$t"/></View>', "ask")
    assert 'name="ask…"' in str(caught.value)
    assert "<Text>, <HyperText>, <Paragraphs>, <Image>" in str(caught.value)


def test_oversized_config_is_refused():
    huge = "<View>" + "<Header value='x'/>" * 100_000 + "</View>"
    with pytest.raises(LabelingConfigError, match="larger than"):
        parse_labeling_config(huge, "prompt", max_bytes=1024 * 1024)
