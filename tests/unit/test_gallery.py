"""Every Label Studio gallery template whose objects this backend reads, with a prompt TextArea added.

For each: the spec fills every control of the template (issue #28: a control left unfilled fails the test,
named with the spec's reason), the answer's schema passes the fake OpenAI's strict checker, and a sample answer
generated from that schema (as the SDK's ``generate_sample_prediction`` does from its own) becomes regions that
``validate_prediction`` accepts, one or more for every control.  Each test prints a line: the template, its
objects and the controls filled.  The configs are copied from label-studio 1.23.2 (see gallery/README.md).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.answers.geometry import ImageSize
from shared.domain.answers.html_spans import PageText
from shared.domain.answers.regions import regions_from_answers
from shared.domain.labeling.schema import answer_schema
from shared.domain.labeling.spec import (
    HTML_SPANS,
    PARAGRAPH_SPANS,
    SPAN_KINDS,
    SUPPORTED_OBJECTS,
    LabelingSpec,
    Output,
    parse_labeling_config,
)
from shared.domain.labeling.strict import to_strict
from tests.fakes.openai_server.strict import strict_problems

GALLERY = Path(__file__).resolve().parents[1] / "configs" / "gallery"
TEMPLATES = sorted(GALLERY.glob("*.xml"))


def with_prompt(config: str) -> str:
    """The config with a prompt TextArea on its first object that reads task data."""
    interface = LabelInterface(config)
    target = next(obj for obj in interface.objects if obj.tag in SUPPORTED_OBJECTS and obj.value_is_variable)
    taken = {tag.name for tag in [*interface.controls, *interface.objects]}
    name = next(candidate for candidate in ("prompt", "prompt-llm", "prompt-llm-2") if candidate not in taken)
    end = config.rindex("</View>")
    return f'{config[:end]}<TextArea name="{name}" toName="{target.name}"/>{config[end:]}'


# A page for HyperText spans to quote from (the html-ner template's own sample): the SDK's has one word.
SAMPLE_PAGE = "<h1>John works at Acme Inc.</h1><p>He lives in New York.</p>"


def sample_task(config: str) -> dict:
    """The template's own sample data (in its comment), over the SDK's generated examples."""
    interface = LabelInterface(config)
    generated = interface.generate_sample_task(mode="upload", secure_mode=False)
    generated.update({obj.value_name: SAMPLE_PAGE for obj in interface.objects if obj.tag == "HyperText"})
    embedded = LabelInterface.get_task_from_labeling_config(config)[0] or {}
    return {**generated, **embedded}


def quoter(output: Output, data: dict, rng: random.Random):
    """Picks words the model could quote for this span output, each (utterance index, word) once."""
    value = data[output.target.field]
    if output.kind == PARAGRAPH_SPANS:
        text_key = output.target.tag.attr.get("textKey", "text")
        texts = [str(item[text_key]) for item in value]
    elif output.kind == HTML_SPANS:
        texts = [PageText(value).text]  # the page's words, not its tags
    else:
        texts = [value]
    words = [(index, word) for index, text in enumerate(texts) for word in text.split()]
    rng.shuffle(words)
    return lambda: words.pop()


def has_empty_enum(node: Any) -> bool:
    """Dynamic options make the SDK write an empty enum: no schema can be had without the task."""
    if isinstance(node, dict):
        return node.get("enum") == [] or any(has_empty_enum(value) for value in node.values())
    return isinstance(node, list) and any(has_empty_enum(value) for value in node)


def sample_value(node: dict, rng: random.Random, quote: Any) -> Any:
    """A value valid for a strict schema node; span items quote the task's text."""
    if "anyOf" in node:
        return sample_value(next(b for b in node["anyOf"] if b.get("type") != "null"), rng, quote)
    if "enum" in node:
        return rng.choice(node["enum"])
    kind = node["type"]
    if kind == "object":
        properties = node["properties"]
        if quote is not None and {"text", "label"} <= properties.keys():  # a span (a shape's text is no quote)
            index, word = quote()
            item = {name: sample_value(child, rng, quote) for name, child in properties.items()}
            item["text"] = word
            if "paragraph" in item:
                item["paragraph"] = index
            if "start" in item:
                item["start"] = None
            return item
        return {name: sample_value(child, rng, quote) for name, child in properties.items()}
    if kind == "array":
        low = node.get("minItems", 1)
        count = rng.randint(low, min(max(low, 2), node.get("maxItems", low + 2)))
        return [sample_value(node["items"], rng, quote) for _ in range(count)]
    if kind == "integer":
        return rng.randint(node.get("minimum", 0), node.get("maximum", 10))
    if kind == "number":
        return rng.uniform(node.get("minimum", 0), node.get("maximum", 100))
    if kind == "string":
        return "A sample answer."
    raise AssertionError(f"no sample for {node}")


def picture_sizes(spec: LabelingSpec, data: dict) -> dict[str, list[ImageSize]]:
    """A size for every picture (masks are drawn at it), as the backend reads it from the picture it fetches."""
    sizes = {}
    for obj in spec.objects:
        if obj.kind == "Image":
            pictures = data.get(obj.field or "")
            sizes[obj.name] = [ImageSize(320, 300)] * (len(pictures) if isinstance(pictures, list) else 1)
    return sizes


def sample_answer(spec: LabelingSpec, schema: dict, data: dict, seed: int) -> dict:
    rng = random.Random(seed)
    answer = {}
    for name, node in schema["properties"].items():
        output = spec.output(name)
        quote = quoter(output, data, rng) if output.kind in SPAN_KINDS else None
        answer[name] = sample_value(node, rng, quote)
        if output.target.image_list and answer[name]:  # shapes on an <Image valueList> name one of its pictures
            for item in answer[name]:
                item["image"] = rng.randint(1, len(data[output.target.field]))
    return answer


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.stem)
def test_gallery_template(path: Path) -> None:
    config = with_prompt(path.read_text())
    interface = LabelInterface(config)
    sdk_schema = interface.to_json_schema()  # the SDK's own schema of the whole config, rewritten
    sdk_schema["properties"] = {k: v for k, v in sdk_schema["properties"].items() if not has_empty_enum(v)}
    assert strict_problems(to_strict(sdk_schema)) == []

    spec = parse_labeling_config(config, "prompt")  # a refusal names each control it cannot fill, and why
    controls = {tag.name for tag in interface.controls} - {spec.prompt.name}
    left = [f"{item.name}:{item.tag} ({item.reason})" for item in spec.unfilled]
    assert left == [], "every control of a gallery template is filled"

    data = sample_task(config)
    schema = answer_schema(spec, data)
    assert strict_problems(schema) == []
    for seed in range(3):
        answer = sample_answer(spec, schema, data, seed)
        jsonschema.Draft202012Validator(schema).validate(answer)
        filled = regions_from_answers(spec, [answer], data, "Label this task", image_sizes=picture_sizes(spec, data))
        assert filled.dropped == []
        checked = [region for region in filled.regions if region["type"] != "pairwise"]
        assert (
            spec.interface.validate_prediction({"result": checked, "score": filled.score()}, return_errors=True) == []
        )
        filled_names = {region["from_name"] for region in filled.regions} - {spec.prompt.name}
        assert filled_names == controls, "every control became a region (a shape's with its labels, its text)"

    kinds = ", ".join(f"{output.name}:{output.control.tag}" for output in spec.outputs)
    print(
        f"{path.stem}: objects {[obj.kind for obj in spec.objects]}; outputs [{kinds}]; "
        f"filled {len(filled_names)}/{len(controls)} controls"
    )
