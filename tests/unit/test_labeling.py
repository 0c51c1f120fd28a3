import pytest

from shared.domain.labeling.spec import LabelingConfigError, parse_labeling_config
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


def kinds(spec):
    return [(output.name, output.kind) for output in spec.outputs]


def test_labelled_shapes_and_masks_on_an_image_are_filled_beside_choices_and_ellipses_are_not():
    config = """<View><Image name="img" value="$image"/><TextArea name="prompt" toName="img"/>
      <RectangleLabels name="boxes" toName="img"><Label value="Car"/></RectangleLabels>
      <KeyPointLabels name="points" toName="img"><Label value="Nose"/></KeyPointLabels>
      <PolygonLabels name="outlines" toName="img" value="$objects"/>
      <BrushLabels name="masks" toName="img"><Label value="Car"/></BrushLabels>
      <EllipseLabels name="ovals" toName="img"><Label value="Car"/></EllipseLabels>
      <Choices name="scene" toName="img"><Choice value="Day"/><Choice value="Night"/></Choices></View>"""
    spec = parse_labeling_config(config, "prompt")
    assert kinds(spec) == [
        ("boxes", "rectangles"),
        ("points", "keypoints"),
        ("outlines", "polygons"),
        ("masks", "masks"),
        ("scene", "choices"),
    ]
    assert spec.output("outlines").dynamic_field == "objects"
    assert [(u.name, u.tag) for u in spec.unfilled] == [("ovals", "EllipseLabels")]
    assert "only boxes, points, polygons and masks drawn as polygons" in spec.unfilled[0].reason


def test_every_in_scope_control_is_an_output():
    config = """<View>
      <Text name="text" value="$text"/><Text name="other" value="$other"/>
      <Paragraphs name="chat" value="$chat"/><HyperText name="page" value="$html"/>
      <TextArea name="prompt" toName="text"/>
      <Choices name="single" toName="text"><Choice value="A"/><Choice value="B" alias="b"/></Choices>
      <Choices name="multi" toName="page" choice="multiple"><Choice value="X"/><Choice value="Y"/></Choices>
      <Choices name="dynamic" toName="text" value="$options"/>
      <Labels name="ner" toName="text"><Label value="PER"/></Labels>
      <ParagraphLabels name="slots" toName="chat"><Label value="City"/></ParagraphLabels>
      <Taxonomy name="topic" toName="text"><Choice value="Sport"><Choice value="Tennis"/></Choice></Taxonomy>
      <Rating name="stars" toName="text" maxRating="10"/>
      <Number name="count" toName="text" min="0"/>
      <TextArea name="summary" toName="chat"/>
      <Pairwise name="better" toName="text,other"/>
    </View>"""
    spec = parse_labeling_config(config, "prompt")
    assert kinds(spec) == [
        ("single", "choices"),
        ("multi", "choices"),
        ("dynamic", "choices"),
        ("ner", "spans"),
        ("slots", "paragraph_spans"),
        ("topic", "taxonomy"),
        ("stars", "rating"),
        ("count", "number"),
        ("summary", "text"),
        ("better", "pairwise"),
    ]
    assert spec.unfilled == ()
    assert [(obj.name, obj.kind, obj.field) for obj in spec.objects] == [
        ("text", "Text", "text"),
        ("other", "Text", "other"),
        ("chat", "Paragraphs", "chat"),
        ("page", "HyperText", "html"),
    ]
    assert [(o.label, o.shown) for o in spec.output("single").options] == [("A", "A"), ("b", "B")]
    assert spec.output("multi").multiple and not spec.output("single").multiple
    assert spec.output("multi").target.name == "page"
    assert spec.output("dynamic").dynamic_field == "options" and spec.output("dynamic").options == ()
    topic = spec.output("topic").options
    assert topic[0].shown == "Sport" and [child.shown for child in topic[0].children] == ["Tennis"]
    assert spec.labels == ["A", "b", "X", "Y"]  # the {labels} of the config's own Choices


def test_dynamic_options_come_from_the_task():
    config = """<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/>
      <Choices name="c" toName="t" value="$options"/></View>"""
    output = parse_labeling_config(config, "prompt").output("c")
    data = {"options": [{"value": "Yes"}, "No", {"value": "Maybe", "alias": "M"}, {"html": "<b>no value</b>"}, 3]}
    assert [(o.label, o.shown) for o in output.options_for(data)] == [("Yes", "Yes"), ("No", "No"), ("M", "Maybe")]
    assert output.options_for({}) == ()
    assert output.options_for({"options": "not a list"}) == ()


def test_a_choices_alias_and_hint_are_its_synonyms_as_the_sdk_reads_them():
    """The SDK keeps them in ``labels_attrs[alias or value].attr``; the backend reads the same attributes from the
    config (nested Taxonomy choices too) and from dynamic options, whose fields Label Studio passes to <Choice>."""
    config = """<View><Text name="t" value="$t"/><TextArea name="prompt" toName="t"/>
      <Choices name="c" toName="t"><Choice value="Sci/Tech" alias="sci_tech" hint="Science and Technology"/>
        <Choice value="World" hint="World"/><Choice value="Sports"/></Choices>
      <Choices name="d" toName="t" value="$options"/></View>"""
    spec = parse_labeling_config(config, "prompt")
    sci_tech, world, sports = spec.output("c").options
    assert spec.output("c").control.labels_attrs["sci_tech"].attr["hint"] == sci_tech.hint == "Science and Technology"
    assert sci_tech.synonyms == ("sci_tech", "Science and Technology")
    assert world.synonyms == sports.synonyms == ()  # a hint that repeats the value names nothing new
    data = {"options": [{"value": "Maybe", "alias": "M", "hint": "Not sure yet"}, {"value": "No", "hint": 3}]}
    assert [o.synonyms for o in spec.output("d").options_for(data)] == [("M", "Not sure yet"), ()]


@pytest.mark.parametrize(
    ("control", "reason"),
    [
        ('<TextArea name="note" toName="t" perRegion="true"/>', "per-region"),
        ('<Choices name="c" toName="t" perRegion="true"><Choice value="A"/></Choices>', "per-region"),
        ('<Choices name="c" toName="a"><Choice value="A"/></Choices>', "attached to <Audio>"),
        ('<HyperTextLabels name="h" toName="t"><Label value="A"/></HyperTextLabels>', "need <HyperText>"),
        ('<Labels name="h" toName="remote"><Label value="A"/></Labels>', "loaded (or decoded) by the browser"),
        ('<HyperTextLabels name="h" toName="coded"><Label value="A"/></HyperTextLabels>', "(or decoded)"),
        ('<Labels name="l" toName="img"><Label value="A"/></Labels>', "geometry tool"),
        ('<Labels name="l" toName="chat"><Label value="A"/></Labels>', "use <ParagraphLabels> there"),
        ('<ParagraphLabels name="l" toName="t"><Label value="A"/></ParagraphLabels>', "need <Paragraphs>"),
        ('<DateTime name="d" toName="t"/>', "<DateTime> is not filled"),
        ('<Choices name="c" toName="nowhere"><Choice value="A"/></Choices>', "matches no object"),
        ('<Choices name="c" toName="t"/>', "lists no options"),
        ('<Taxonomy name="x" toName="t" apiUrl="https://example.com/tree"/>', "apiUrl"),
        ('<Pairwise name="p" toName="t,a"/>', "attached to <Audio>"),
        ('<Rectangle name="r" toName="img"/>', "an unlabelled <Rectangle> is predicted only with a <Labels>"),
        ('<EllipseLabels name="e" toName="img"><Label value="A"/></EllipseLabels>', "ellipses, unlabelled points"),
        ('<PolygonLabels name="p" toName="t"><Label value="A"/></PolygonLabels>', "need <Image>, not <Text>"),
        ('<KeyPointLabels name="k" toName="img"/>', "lists no options"),
    ],
)
def test_controls_out_of_scope_are_unfilled_with_the_reason(control, reason):
    config = f"""<View><Text name="t" value="$t"/><HyperText name="page" value="$html"/>
      <HyperText name="remote" value="$url" valueType="url"/><HyperText name="coded" value="$b" encoding="base64"/>
      <Image name="img" value="$img"/><Audio name="a" value="$audio"/><Paragraphs name="chat" value="$chat"/>

      <TextArea name="prompt" toName="t"/><TextArea name="answer" toName="t"/>{control}</View>"""
    spec = parse_labeling_config(config, "prompt")
    assert kinds(spec) == [("answer", "text")]
    assert len(spec.unfilled) == 1 and reason in spec.unfilled[0].reason


def test_a_config_with_nothing_fillable_is_refused_naming_what_is_unfilled():
    config = """<View><Image name="img" value="$image"/><TextArea name="prompt" toName="img"/>
      <EllipseLabels name="ovals" toName="img"><Label value="Car"/></EllipseLabels></View>"""
    with pytest.raises(LabelingConfigError, match="nowhere to put the answer") as caught:
        parse_labeling_config(config, "prompt")
    assert "ovals: only boxes, points, polygons" in str(caught.value)
