"""HyperText spans: the page's text as Label Studio's editor counts it, and quotes turned into its XPath ranges.

The expected values are what Label Studio 1.23's editor computes (``RichText/domManager.ts``): XPaths from the
root (the iframe's body, or the inline div) with ``text()`` steps, offsets in a text node in UTF-16 units,
global offsets over every text node in document order plus one per ``<br>``.  ``tests/e2e/test_structured.py``
checks the same against the real editor.
"""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from shared.domain.answers.html_spans import PageText
from shared.domain.answers.regions import regions_from_answers
from shared.domain.labeling.schema import answer_schema
from shared.domain.labeling.spec import HTML_SPANS, parse_labeling_config

PAGE = "<h1>John works at Acme Inc.</h1><p>He lives in New York.</p>"


def test_each_text_node_has_the_editors_xpath_and_global_start():
    page = PageText(PAGE)
    assert [(node.path, node.start, node.text) for node in page.nodes] == [
        ("/h1[1]/text()[1]", 0, "John works at Acme Inc."),
        ("/p[1]/text()[1]", 23, "He lives in New York."),
    ]
    assert page.text == "John works at Acme Inc.He lives in New York."


def test_the_tree_is_the_browsers_not_the_tags_as_written():
    # a <tr> gets its <tbody>, a <p> is closed by the next, character references are characters, a comment
    # splits a text node, <br> counts one character, <head> text is not in the body
    page = PageText("<title>T</title><table><tr><td>A<br>B</td></tr></table><p>x<p>y &amp; z<!-- c -->w")
    assert [(node.path, node.start, node.text) for node in page.nodes] == [
        ("/table[1]/tbody[1]/tr[1]/td[1]/text()[1]", 0, "A"),
        ("/table[1]/tbody[1]/tr[1]/td[1]/text()[2]", 2, "B"),
        ("/p[1]/text()[1]", 3, "x"),
        ("/p[2]/text()[1]", 4, "y & z"),
        ("/p[2]/text()[2]", 9, "w"),
    ]
    assert page.text == "A\nBxy & zw"


def test_inline_pages_are_rooted_at_their_div_and_keep_the_text_a_body_would_move():
    assert [node.path for node in PageText("<title>T</title><p>a</p>", inline=True).nodes] == [
        "/title[1]/text()[1]",
        "/p[1]/text()[1]",
    ]


def in_node(path: str, start: int, end: int, first: int, last: int) -> dict:
    """The value of a span within one text node."""
    return {
        "start": path,
        "startOffset": start,
        "end": path,
        "endOffset": end,
        "globalOffsets": {"start": first, "end": last},
    }


def test_whitespace_between_blocks_counts_as_the_editor_counts_it():
    page = PageText("<div>\n  <p>Anna</p>\n  <p>Paris</p>\n</div>")
    paris = page.text.index("Paris")
    assert paris == 10  # "\n  " + "Anna" + "\n  " before it
    assert page.xpath_range(paris, paris + 5) == in_node("/div[1]/p[2]/text()[1]", 0, 5, 10, 15)


def test_a_range_across_nodes_ends_in_the_node_holding_its_last_character():
    page = PageText("<p>New <b>York</b> City</p>")
    assert page.xpath_range(0, 8) == {
        "start": "/p[1]/text()[1]",
        "startOffset": 0,
        "end": "/p[1]/b[1]/text()[1]",
        "endOffset": 4,
        "globalOffsets": {"start": 0, "end": 8},
    }


def test_offsets_in_a_node_are_utf16_units_and_global_offsets_code_points():
    assert PageText("<p>😀 Anna</p>").xpath_range(2, 6) == in_node("/p[1]/text()[1]", 3, 7, 2, 6)


def test_a_range_cannot_start_on_a_br():
    page = PageText("<p>A<br>B</p>")
    assert page.xpath_range(1, 3) is None
    assert page.xpath_range(2, 3) is not None


def test_deep_pages_need_no_recursion():
    page = PageText("<span>" * 2000 + "deep" + "</span>" * 2000 + "er")
    assert page.text == "deeper" and page.xpath_range(0, 6)["globalOffsets"] == {"start": 0, "end": 6}


CONFIG = """<View>
  <HyperText name="page" value="$html"/>
  <TextArea name="prompt" toName="page"/>
  <HyperTextLabels name="ner" toName="page"><Label value="Person"/><Label value="Organization"/></HyperTextLabels>
  <Labels name="places" toName="page"><Label value="City"/></Labels>
</View>"""


def test_hypertext_labels_and_labels_on_hypertext_are_filled_with_quotes():
    spec = parse_labeling_config(CONFIG, "prompt")
    assert [(output.name, output.kind) for output in spec.outputs] == [("ner", HTML_SPANS), ("places", HTML_SPANS)]
    [array, _null] = answer_schema(spec, {})["properties"]["ner"]["anyOf"]
    item = array["items"]
    assert set(item["properties"]) == {"text", "label"}  # no start hint: the model reads the source, not the text


def test_quotes_become_the_regions_label_studio_stores():
    spec = parse_labeling_config(CONFIG, "prompt")
    data = {"html": PAGE + "<p>John &amp; Acme Inc. again</p>"}
    answer = {
        "ner": [
            {"text": "John", "label": "Person"},
            {"text": "Acme Inc.", "label": "Organization"},
            {"text": "John", "label": "Person"},  # the second occurrence
            {"text": "Mary", "label": "Person"},  # not in the page: dropped
        ],
        "places": [{"text": "new  york", "label": "City"}],  # loosely: as written in the page
    }
    filled = regions_from_answers(spec, [answer], data, None)
    assert filled.dropped == ["ner: 'Mary' is not in the text of page (or not that often)"]
    by_name = {}
    for region in filled.regions:
        by_name.setdefault(region["from_name"], []).append(region)
    assert [region["value"] for region in by_name["ner"]] == [
        {
            "start": "/h1[1]/text()[1]",
            "end": "/h1[1]/text()[1]",
            "startOffset": 0,
            "endOffset": 4,
            "globalOffsets": {"start": 0, "end": 4},
            "text": "John",
            "hypertextlabels": ["Person"],
        },
        {
            "start": "/h1[1]/text()[1]",
            "end": "/h1[1]/text()[1]",
            "startOffset": 14,
            "endOffset": 23,
            "globalOffsets": {"start": 14, "end": 23},
            "text": "Acme Inc.",
            "hypertextlabels": ["Organization"],
        },
        {
            "start": "/p[2]/text()[1]",
            "end": "/p[2]/text()[1]",
            "startOffset": 0,
            "endOffset": 4,
            "globalOffsets": {"start": 44, "end": 48},
            "text": "John",
            "hypertextlabels": ["Person"],
        },
    ]
    [city] = by_name["places"]
    assert city["value"]["text"] == "New York" and city["value"]["labels"] == ["City"]
    assert city["type"] == "labels" and by_name["ner"][0]["type"] == "hypertextlabels"
    assert LabelInterface(CONFIG).validate_prediction({"result": filled.regions}, return_errors=True) == []
    assert filled.confidences == [1.0, 1.0, 1.0, 0.9]


@pytest.mark.parametrize("quote", ["AT&amp;T", "AT&T"])
def test_a_quote_of_the_source_with_character_references_is_found(quote):
    spec = parse_labeling_config(CONFIG, "prompt")
    filled = regions_from_answers(
        spec, [{"ner": [{"text": quote, "label": "Organization"}]}], {"html": "<p>AT&amp;T</p>"}, None
    )
    [region] = filled.regions
    assert region["value"]["text"] == "AT&T" and region["value"]["globalOffsets"] == {"start": 0, "end": 4}
