"""Long texts: split on sentence boundaries with overlap, parts' spans mapped back and kept once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.labeling.spec import parse_labeling_config
from shared.domain.prompts.long_texts import Part, SplitTask, overlap_for, split_task, split_text

SENTENCES = "".join(f"Sentence {index} names Anna in Paris. " for index in range(200))


def check_parts(text: str, parts: list[Part], limit: int) -> None:
    """What every split must hold: parts are the text's own slices, in order, within the limit, overlapping
    (or touching) the part before, covering the text from its start to its end."""
    assert parts[0].start == 0 and parts[-1].start + len(parts[-1].text) == len(text)
    for part in parts:
        assert text[part.start : part.start + len(part.text)] == part.text
        assert 0 < len(part.text) <= limit
    for before, after in zip(parts, parts[1:], strict=False):
        assert before.start < after.start <= before.start + len(before.text)


def test_a_text_within_the_limit_is_one_part():
    assert split_text("Short. Text.", 100) == [Part(0, "Short. Text.")]


def test_parts_end_at_sentence_boundaries_and_overlap_by_whole_sentences():
    parts = split_text(SENTENCES, 1000)
    check_parts(SENTENCES, parts, 1000)
    assert len(parts) >= -(-len(SENTENCES) // 1000)  # at least as many as the limit needs
    for before, after in zip(parts, parts[1:], strict=False):
        assert before.text.endswith("Paris. ")  # a whole sentence, with the space after it
        assert after.text.startswith("Sentence ")
        overlap = before.start + len(before.text) - after.start
        assert 0 < overlap <= overlap_for(1000), "a few sentences again, no more than the overlap"


def test_without_sentences_parts_end_at_spaces_and_a_word_longer_than_a_part_is_cut():
    words = "word " * 100
    parts = split_text(words, 52)
    check_parts(words, parts, 52)
    assert all(part.text.startswith("word") for part in parts)
    one_word = "x" * 250
    check_parts(one_word, split_text(one_word, 100), 100)


def test_cjk_sentences_end_without_a_space():
    text = "今日は晴れです。" * 50
    parts = split_text(text, 100)
    check_parts(text, parts, 100)
    assert all(part.text.endswith("。") for part in parts[:-1])


@given(st.text(alphabet="ab .!\n", max_size=400), st.integers(min_value=5, max_value=120))
def test_any_text_splits_into_ordered_covering_parts(text, limit):
    parts = split_text(text, limit)
    if len(text) <= limit:
        assert parts == [Part(0, text)]
    else:
        check_parts(text, parts, limit)


CONFIG = """<View><Text name="text" value="$text"/><Text name="title" value="$title"/>
  <TextArea name="prompt" toName="text"/>
  <Labels name="ner" toName="text"><Label value="PER"/></Labels>
  <Labels name="heads" toName="title"><Label value="PER"/></Labels>
  <Choices name="tone" toName="text"><Choice value="Calm"/></Choices>
</View>"""


def test_only_a_text_that_labels_quote_from_and_that_is_too_long_is_split():
    spec = parse_labeling_config(CONFIG, "prompt")
    assert split_task(spec, {"text": SENTENCES[:500], "title": "t"}, 1000) is None
    assert split_task(spec, {"text": SENTENCES, "title": "t"}, 0) is None, "0 never splits"
    split = split_task(spec, {"text": SENTENCES, "title": "t"}, 1000)
    assert split is not None and split.field == "text" and split.outputs == frozenset({"ner"})
    assert split.data_for({"text": SENTENCES, "title": "t"}, split.parts[1]) == {
        "text": split.parts[1].text,
        "title": "t",
    }
    assert split_task(spec, {"text": "short", "title": SENTENCES}, 1000).outputs == frozenset({"heads"})


def region(name: str, start: int, end: int, label: str = "PER") -> dict:
    return {
        "from_name": name,
        "to_name": "text",
        "type": "labels",
        "value": {"start": start, "end": end, "labels": [label]},
    }


def test_merged_spans_are_at_their_offsets_in_the_whole_text_once_and_the_rest_comes_from_the_first_part():
    split = SplitTask("text", frozenset({"ner"}), (Part(0, "x" * 100), Part(90, "x" * 100)))
    first = {
        "result": [region("ner", 5, 9), region("ner", 92, 96), {"from_name": "tone", "value": {"choices": ["Calm"]}}],
        "score": 0.9,
        "model_version": "v",
    }
    second = {
        "result": [
            region("ner", 2, 6),  # 92..96 again, from the overlap: kept once
            region("ner", 2, 6, "LOC"),  # the same words with another label: a region of its own
            region("ner", 50, 60),
            {"from_name": "tone", "value": {"choices": ["Other"]}},
        ],
        "score": 0.5,
        "model_version": "v",
    }
    merged = split.merge([first, second])
    assert [
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"])
        for r in merged["result"]
        if r["from_name"] == "ner"
    ] == [
        (5, 9, ["PER"]),
        (92, 96, ["PER"]),
        (92, 96, ["LOC"]),
        (140, 150, ["PER"]),
    ]
    assert [r["value"] for r in merged["result"] if r["from_name"] == "tone"] == [{"choices": ["Calm"]}]
    assert merged["score"] == pytest.approx(0.7) and merged["model_version"] == "v"
