"""A 300 KB NER text through the API with the default LONG_TEXT_CHARS: asked in parts over HTTP to the fake
OpenAI server, which quotes the entities of the part it is sent; the spans come back at their offsets in the
whole text, each once (the overlaps repeat sentences), and the parts' tokens are the task's usage."""

from __future__ import annotations

import re

from label_studio_sdk.label_interface import LabelInterface

from shared.domain.config import Settings

PROJECT = "28.1700000000"  # Label Studio's "<project id>.<timestamp>": usage is counted for project 28
CONFIG = """<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text"/>
  <Labels name="ner" toName="text"><Label value="PER"/><Label value="LOC"/></Labels>
  <Choices name="tone" toName="text"><Choice value="Calm"/><Choice value="Tense"/></Choices>
</View>"""
# A unique name per sentence (P00042), a name in every sentence (Anna: the n-th quote is the n-th Anna of the
# part) and places that come back every 37 sentences (L007).
ENTITY = re.compile(r"\bP\d{5}\b|\bAnna\b|\bL\d{3}\b")


def long_text(size: int) -> str:
    sentences, index = [], 0
    while sum(map(len, sentences)) < size:
        sentences.append(f"In report {index}, P{index:05d} wrote to Anna about the L{index % 37:03d} works. ")
        if index % 11 == 10:
            sentences.append("\n\n")  # paragraphs too
        index += 1
    return "".join(sentences)


def quotes_of(messages: list[dict]) -> dict:
    """The model's answer: every entity of the part it was sent, in order, a repeated one once per occurrence;
    the tone only from the document's first part (the others say otherwise)."""
    part = messages[-1]["content"]
    entities = [
        {"text": found, "label": "PER" if found[0] in "PA" else "LOC", "start": None} for found in ENTITY.findall(part)
    ]
    return {"ner": entities, "tone": "Calm" if "In report 0," in part else "Tense"}


def test_a_300_kb_text_gets_every_span_at_its_offset_once(
    make_client, make_settings, real_store, redis_prefix, fake_llm
):
    settings: Settings = make_settings(redis_key_prefix=redis_prefix)
    client = make_client(settings, real_store)
    text = long_text(300_000)
    fake_llm.reply = lambda messages, index: quotes_of(messages)
    prompt = {"from_name": "prompt", "to_name": "text", "type": "textarea", "value": {"text": ["Find the names."]}}
    body = {
        "tasks": [{"id": 1, "data": {"text": text}}],
        "project": PROJECT,
        "label_config": CONFIG,
        "params": {"context": {"result": [prompt]}},
    }

    response = client.post("/predict", json=body)

    assert response.status_code == 200, response.json
    [prediction] = response.json["results"]
    spans = [region["value"] for region in prediction["result"] if region["from_name"] == "ner"]
    expected = [
        {
            "start": found.start(),
            "end": found.end(),
            "text": found.group(),
            "labels": ["PER" if found.group()[0] in "PA" else "LOC"],
        }
        for found in ENTITY.finditer(text)
    ]
    assert len(expected) > 15_000
    assert sorted(spans, key=lambda span: span["start"]) == expected, "every entity once, at its offset"
    assert [region["value"] for region in prediction["result"] if region["from_name"] == "tone"] == [
        {"choices": ["Calm"]}
    ]
    sample = prediction["result"][:200] + prediction["result"][-200:]  # the SDK checks every region against all
    assert LabelInterface(CONFIG).validate_prediction({**prediction, "result": sample}, return_errors=True) == []

    calls = fake_llm.completions
    limit = settings.long_text_chars
    assert len(calls) >= len(text) // limit + 1, "one call per part"
    sent = [call.body["messages"][-1]["content"] for call in calls]
    assert all(len(part) < limit + 100 for part in sent), "each call holds one part (and the prompt's words)"
    assert sent[0].count("In report 0,") == 1 and "In report 0," not in "".join(sent[1:])
    assert sum(part.count(" Anna ") for part in sent) > text.count(" Anna "), "the parts overlap"
    # The parts' tokens are the task's usage, counted once: as many calls as parts, their tokens summed.
    model = settings.defaults.llm.model
    assert real_store.calls("28") == {model: len(calls)}
    usage = [call.answer["usage"] for call in calls]
    assert real_store.usage("28")[model] == {
        "in": sum(u["prompt_tokens"] for u in usage),
        "out": sum(u["completion_tokens"] for u in usage),
        "cached": sum(u["prompt_tokens_details"]["cached_tokens"] for u in usage),
    }
