"""Reading labels, ratings, numbers and taxonomy paths out of free-text answers.

The corpus below was written before the reader: answers in the styles real models write, each with the labels a
person reads in it.  The reader must be right on at least 95 % of them; the misses it may have are listed in
``KNOWN_MISSES`` (each one xfails strictly, so a fix shows up as an unexpected pass) and the bar is checked over the
whole corpus by ``test_the_reader_is_right_on_at_least_95_percent``.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.answers.prose import (
    ABBREVIATION,
    DECLINED,
    EXACT,
    NAMED,
    LabelMatch,
    declining_phrase,
    read_labels,
    read_number,
    read_rating,
    read_taxonomy,
)
from shared.domain.labeling.spec import parse_labeling_config
from tests.conftest import labeling_config

SENTIMENT = ("sentiment", ["Positive", "Negative", "Neutral"], False)
SARCASM = ("sentiment", ["Sarcastic", "Not Sarcastic"], False)
TOPICS = ("topic", ["sports", "politics", "technology"], True)
TOPIC = ("topic", ["sports", "politics", "technology"], False)
RECEIPTS = ("category", list(parse_labeling_config(labeling_config("receipts"), "prompt").choices[0].labels), False)
INTENTS = (
    "intent",
    ["book_flight", "cancel_booking", "check_balance", "transfer_money", "greeting", "complaint"],
    False,
)

# (label set, answer, the labels a person reads in it)
CORPUS = [
    # sentiment, single choice
    (SENTIMENT, "Negative", ["Negative"]),
    (SENTIMENT, "negative", ["Negative"]),
    (SENTIMENT, "NEGATIVE.", ["Negative"]),
    (SENTIMENT, "The sentiment of this review is negative.", ["Negative"]),
    (SENTIMENT, "**Negative**", ["Negative"]),
    (SENTIMENT, "Sentiment: **Positive**", ["Positive"]),
    (SENTIMENT, "Negative — the reviewer complains about the cold food and the rude waiter.", ["Negative"]),
    (SENTIMENT, "Positive. The customer praises the friendly staff and says they will come back.", ["Positive"]),
    (SENTIMENT, "Probably positive, though the last sentence sounds a bit annoyed.", ["Positive"]),
    (SENTIMENT, "I'd say neutral: the text just describes the opening hours.", ["Neutral"]),
    (SENTIMENT, '{"sentiment": "Negative"}', ["Negative"]),
    (SENTIMENT, '```json\n{\n  "sentiment": "positive",\n  "confidence": 0.92\n}\n```', ["Positive"]),
    (SENTIMENT, '{"reasoning": "The author is disappointed with the delivery.", "label": "Negative"}', ["Negative"]),
    (SENTIMENT, "The review is not negative; it is mostly neutral with a slight positive tone.", ["Neutral"]),
    (SENTIMENT, "not negative", []),
    (SENTIMENT, "The sentiment is neither positive nor negative, so Neutral.", ["Neutral"]),
    (SENTIMENT, "Answer: Neutral", ["Neutral"]),
    (SENTIMENT, "Label: positive\nReason: the reviewer loved the pasta.", ["Positive"]),
    (SENTIMENT, "Sentiment : Positive", ["Positive"]),
    (SENTIMENT, "«Negative»", ["Negative"]),
    (SENTIMENT, "答案：Positive", ["Positive"]),
    (SENTIMENT, "„Neutral“", ["Neutral"]),
    (SENTIMENT, "¡Positive!", ["Positive"]),
    (SENTIMENT, "Positive 👍", ["Positive"]),
    (SENTIMENT, "I cannot determine the sentiment of this text without more context.", []),
    (SENTIMENT, "As an AI language model, I don't have personal opinions.", []),
    (SENTIMENT, "None of the above.", []),
    (SENTIMENT, "Pos", ["Positive"]),
    (SENTIMENT, "neg.", ["Negative"]),
    (SENTIMENT, "Overall sentiment → NEGATIVE (the product broke after two days)", ["Negative"]),
    (SENTIMENT, "The tone is negative, not positive.", ["Negative"]),
    (SENTIMENT, "Some might read it as positive, but the overall sentiment is negative.", ["Negative"]),
    (SENTIMENT, "1. Positive", ["Positive"]),
    (SENTIMENT, "- **Sentiment**: Negative\n- **Confidence**: high", ["Negative"]),
    (SENTIMENT, "The answer is: Neutral.", ["Neutral"]),
    (SENTIMENT, "Sentiment = positive", ["Positive"]),
    (SENTIMENT, "Positive (confidence: 0.8)", ["Positive"]),
    (SENTIMENT, "Negativ", ["Negative"]),
    (SENTIMENT, "This is a positive review.", ["Positive"]),
    (SENTIMENT, "I think it's negative.", ["Negative"]),
    (SENTIMENT, "Mixed, leaning negative.", ["Negative"]),
    (SENTIMENT, "Positive overall, but with some negative remarks about the price.", ["Positive"]),
    (SENTIMENT, "Sentiment: Négative.", ["Negative"]),
    (SENTIMENT, "{'sentiment': 'Neutral'}", ["Neutral"]),
    # sarcasm, single choice
    (SARCASM, "This is not sarcastic.", ["Not Sarcastic"]),
    (SARCASM, "Sarcastic", ["Sarcastic"]),
    (SARCASM, "Yes, this tweet is sarcastic — nobody actually enjoys waiting two hours at the DMV.", ["Sarcastic"]),
    (SARCASM, "No, it isn't sarcastic; the author sincerely thanks the nurses.", ["Not Sarcastic"]),
    (SARCASM, "NOT SARCASTIC", ["Not Sarcastic"]),
    (SARCASM, "Not sarcastic at all.", ["Not Sarcastic"]),
    (SARCASM, "The text is not at all sarcastic.", ["Not Sarcastic"]),
    (SARCASM, "Non-sarcastic", ["Not Sarcastic"]),
    (SARCASM, "**Sarcastic.** The phrase 'Great, rain again' says the opposite of what it means.", ["Sarcastic"]),
    (SARCASM, '{"sentiment": "Not Sarcastic"}', ["Not Sarcastic"]),
    (SARCASM, "The tweet is clearly sarcastic.", ["Sarcastic"]),
    (SARCASM, "I don't think this is sarcastic.", ["Not Sarcastic"]),
    (SARCASM, "It’s not sarcastic – the writer means it.", ["Not Sarcastic"]),
    (SARCASM, "Sarcastic: the author obviously does not enjoy Mondays.", ["Sarcastic"]),
    (SARCASM, "I'm not sure whether this is sarcastic or not.", []),
    # topics, multiple choice
    (TOPICS, "This text is about sports and politics.", ["sports", "politics"]),
    (TOPICS, '["sports", "politics"]', ["sports", "politics"]),
    (TOPICS, "- Sports\n- Technology", ["sports", "technology"]),
    (TOPICS, "1. politics\n2. technology", ["politics", "technology"]),
    (TOPICS, "Topics: Sports, Politics", ["sports", "politics"]),
    (
        TOPICS,
        "The article covers a new smartphone launch, so technology. Nothing about sports or politics.",
        ["technology"],
    ),
    (TOPICS, "tech", ["technology"]),
    (TOPICS, "Politics & Technology", ["politics", "technology"]),
    (TOPICS, "```\nsports\n```", ["sports"]),
    (TOPICS, "The text discusses the World Cup final, so the topic is sports.", ["sports"]),
    (TOPICS, '{"topic": ["technology", "politics"]}', ["technology", "politics"]),
    (TOPICS, "None of these topics apply.", []),
    (TOPICS, "Sports; politics", ["sports", "politics"]),
    (TOPICS, "It is mainly about tech, with some politics.", ["technology", "politics"]),
    (TOPIC, "tech", ["technology"]),
    (TOPIC, "This text is about sports and politics.", ["sports"]),
    # receipts, single choice, the 21 categories of tests/configs/receipts.xml
    (RECEIPTS, "Dining/Restaurants", ["Dining/Restaurants"]),
    (RECEIPTS, "This looks like a restaurant bill: two entrées, wine and a tip.", ["Dining/Restaurants"]),
    (RECEIPTS, "Category: Groceries", ["Groceries"]),
    (RECEIPTS, "groceries", ["Groceries"]),
    (RECEIPTS, "The receipt is from a pharmacy (prescription refill).", ["Health/Pharmacy"]),
    (RECEIPTS, "Gas station receipt → Gasoline/Fuel", ["Gasoline/Fuel"]),
    (RECEIPTS, "Vehicle Maintenance", ["Vehicle Maintenance/Repairs"]),
    (RECEIPTS, "**Category:** Electronics (a USB-C charger and headphones)", ["Electronics"]),
    (RECEIPTS, "It's a veterinary clinic invoice, so Pet Care.", ["Pet Care"]),
    (RECEIPTS, "Utilities", ["Utilities/Bills"]),
    (RECEIPTS, "Other", ["Other"]),
    (RECEIPTS, "This receipt does not fit any of the categories.", ["Other"]),  # [] before issue #28
    (RECEIPTS, "Clothing & Apparel", ["Clothing/Apparel"]),
    (RECEIPTS, "Home furnishings / décor", ["Home Furnishings/Decor"]),
    (RECEIPTS, "The purchase was a monthly gym membership.", ["Membership/Subscriptions"]),
    (
        RECEIPTS,
        "Answer: Transportation/Travel\nThe receipt is for a train ticket from Berlin to Munich.",
        ["Transportation/Travel"],
    ),
    (RECEIPTS, "Health / Pharmacy", ["Health/Pharmacy"]),
    (RECEIPTS, "A car repair shop invoice: Vehicle Maintenance/Repairs.", ["Vehicle Maintenance/Repairs"]),
    (RECEIPTS, "Books", ["Education/Books"]),
    (RECEIPTS, "The items (milk, bread, eggs) suggest a grocery store.", ["Groceries"]),
    (RECEIPTS, "None of the categories really fit, so Other.", ["Other"]),
    # intents, single choice
    (INTENTS, "book_flight", ["book_flight"]),
    (INTENTS, "Intent: cancel_booking", ["cancel_booking"]),
    (INTENTS, "The user wants to check their account balance.", ["check_balance"]),
    (INTENTS, "The customer is asking to transfer money to a friend.", ["transfer_money"]),
    (INTENTS, "Book Flight", ["book_flight"]),
    (INTENTS, "greeting", ["greeting"]),
    (INTENTS, '{"intent": "complaint", "confidence": 0.87}', ["complaint"]),
    (INTENTS, "This is a complaint about a delayed refund.", ["complaint"]),
    (INTENTS, "The intent is to book a flight to Lisbon.", ["book_flight"]),
    (INTENTS, "I'm sorry, but I can't help with that.", []),
    (INTENTS, "CancelBooking", ["cancel_booking"]),
    (INTENTS, "`transfer_money`", ["transfer_money"]),
]

# Written after the reader worked on CORPUS and added without running it first: the honest figure.
HELD_OUT = [
    (SENTIMENT, "### Answer\nNegative", ["Negative"]),
    (SENTIMENT, "Final answer: **Neutral**", ["Neutral"]),
    (SENTIMENT, "Negative sentiment.", ["Negative"]),
    (SENTIMENT, "The review expresses a positive sentiment overall.", ["Positive"]),
    (SENTIMENT, "Réponse : « Positive »", ["Positive"]),
    (SENTIMENT, "Sentiment: Positive 😊\nThe user is happy with the purchase.", ["Positive"]),
    (SENTIMENT, "It's hard to say; it could be positive or neutral.", []),
    (SENTIMENT, "negative!!!", ["Negative"]),
    (SENTIMENT, "Sentiment → Neutral.", ["Neutral"]),
    (SENTIMENT, "The customer is clearly unhappy, so I'd classify this as Negative.", ["Negative"]),
    (SENTIMENT, "POSITIVE - the reviewer loved it", ["Positive"]),
    (SENTIMENT, "Neutral (no strong opinion expressed)", ["Neutral"]),
    (SENTIMENT, "The sentiment isn't negative.", []),
    (SENTIMENT, "> Positive", ["Positive"]),
    (SENTIMENT, "Label → positive", ["Positive"]),
    (
        SENTIMENT,
        "Positive.\n\nExplanation: Although the reviewer mentions a negative experience with shipping, "
        "the product itself is praised.",
        ["Positive"],
    ),
    (SARCASM, "Final answer: **Not Sarcastic**", ["Not Sarcastic"]),
    (SARCASM, "sarcastic?? definitely not", ["Not Sarcastic"]),
    (SARCASM, "Sarcasm detected: the tweet is sarcastic.", ["Sarcastic"]),
    (SARCASM, "This tweet is sarcastic, not sincere.", ["Sarcastic"]),
    (SARCASM, "Not Sarcastic.", ["Not Sarcastic"]),
    (SARCASM, "No sarcasm here — Not Sarcastic", ["Not Sarcastic"]),
    (SARCASM, "The author is being sarcastic when they say 'love it'.", ["Sarcastic"]),
    (SARCASM, '```json\n{"label": "Sarcastic", "reason": "ironic praise"}\n```', ["Sarcastic"]),
    (TOPICS, "Categories: Sports (0.9), Politics (0.4)", ["sports", "politics"]),
    (TOPICS, "* technology\n* politics", ["technology", "politics"]),
    (TOPICS, "Topic(s): Technology.", ["technology"]),
    (TOPICS, "Both politics and technology.", ["politics", "technology"]),
    (TOPICS, "The text is primarily about sports.", ["sports"]),
    (TOPICS, "It touches on political debate and new tech regulation.", ["politics", "technology"]),
    (TOPICS, "SPORTS, POLITICS", ["sports", "politics"]),
    (TOPICS, '{"topics": ["Sports"]}', ["sports"]),
    (
        RECEIPTS,
        "The best category is probably Entertainment/Leisure since it's a movie ticket.",
        ["Entertainment/Leisure"],
    ),
    (RECEIPTS, "Movie tickets → Entertainment", ["Entertainment/Leisure"]),
    (RECEIPTS, "Classification — Electronics", ["Electronics"]),
    (RECEIPTS, "Category: Taxes", ["Taxes"]),
    (RECEIPTS, "Insurance premium payment → Insurance.", ["Insurance"]),
    (RECEIPTS, "Personal care", ["Personal Care"]),
    (RECEIPTS, "This is a hardware store receipt (paint, screws) — Home Improvement.", ["Home Improvement"]),
    (RECEIPTS, "Education / Books — a textbook purchase", ["Education/Books"]),
    (RECEIPTS, "Subscription", ["Membership/Subscriptions"]),
    (RECEIPTS, "A donation to the Red Cross.", ["Gifts/Donations"]),
    (RECEIPTS, "Fuel", ["Gasoline/Fuel"]),
    (RECEIPTS, "Professional services (legal consultation)", ["Professional Services"]),
    (INTENTS, "Intent: book flight", ["book_flight"]),
    (INTENTS, "The user is greeting the assistant.", ["greeting"]),
    (INTENTS, "check_balance.", ["check_balance"]),
    (INTENTS, "The customer wants to cancel their booking for next week.", ["cancel_booking"]),
    (INTENTS, "Looks like a complaint.", ["complaint"]),
]
# A second held-out batch, written after the fixes for the misses of HELD_OUT and added without running it first.
HELD_OUT_AFTER_FIXES = [
    (SENTIMENT, "Sentiment: NEUTRAL\nConfidence: 70%", ["Neutral"]),
    (SENTIMENT, "I would classify the sentiment as **negative** because the customer demands a refund.", ["Negative"]),
    (SENTIMENT, "Positive?", ["Positive"]),
    (SENTIMENT, "1) Sentiment – Negative", ["Negative"]),
    (SENTIMENT, "The overall tone is positive, although the reviewer is not positive about the price.", ["Positive"]),
    (SENTIMENT, "Mostly negative.", ["Negative"]),
    (SENTIMENT, "There is no clear sentiment.", []),
    (SENTIMENT, "『Negative』", ["Negative"]),
    (SENTIMENT, '{"label": "Neutral", "alternatives": ["Positive"]}', ["Neutral"]),
    (SARCASM, "Is it sarcastic? Yes.", ["Sarcastic"]),
    (SARCASM, "Is it sarcastic? No.", ["Not Sarcastic"]),
    (SARCASM, "Definitely sarcastic!", ["Sarcastic"]),
    (SARCASM, "The speaker isn't being sarcastic, they are genuinely grateful.", ["Not Sarcastic"]),
    (SARCASM, "sarcastic (the 'great' is ironic)", ["Sarcastic"]),
    (TOPICS, "Sports and technology (e-sports tournament streaming).", ["sports", "technology"]),
    (TOPICS, "politics", ["politics"]),
    (TOPICS, "Relevant topics:\n1. Sports\n2. Politics\nNot relevant: Technology", ["sports", "politics"]),
    (TOPICS, "None.", []),
    (TOPICS, "technology, sports, politics", ["technology", "sports", "politics"]),
    (RECEIPTS, "Groceries 🛒", ["Groceries"]),
    (RECEIPTS, "This is an Uber ride receipt, so Transportation/Travel.", ["Transportation/Travel"]),
    (RECEIPTS, "Category - Dining / Restaurants", ["Dining/Restaurants"]),
    (RECEIPTS, "The receipt is for dog food and a vet visit: Pet Care", ["Pet Care"]),
    (RECEIPTS, "Home Improvement or Home Furnishings/Decor — it's a lamp from IKEA.", []),
    (INTENTS, "Intent → transfer_money (the user asks to send $50 to Anna)", ["transfer_money"]),
    (INTENTS, "greeting.", ["greeting"]),
    (INTENTS, "The user is complaining about a late delivery.", ["complaint"]),
    (INTENTS, "Cancel booking", ["cancel_booking"]),
]
# Issue #28: answers that decline, and labels named by a synonym (a <Choice>'s alias or hint, an abbreviation
# across "/", "&" or "and"); written before the reader learnt them and added without running them first.
# A declining answer reads as the config's none/other choice when it offers one, else as nothing.
AG_NEWS = ("topic", ["World", "Sports", "Business", "Sci/Tech"], False)
DEPARTMENTS = ("department", ["R&D", "Sales", "Human Resources", "Legal"], False)
AREAS = ("area", ["Research and Development", "Marketing", "Operations"], False)
SENTIMENT_OR_NONE = ("sentiment", ["Positive", "Negative", "Neutral", "None"], False)
TOPICS_OR_OTHER = ("topic", ["sports", "politics", "technology", "other"], True)
YES_NO_NONE = ("answer", ["Yes", "No", "None of the above"], False)
# label set with synonyms: the alias and hint of each <Choice> (labels as the model reads them → other names)
AG_NEWS_HINTED = (
    "topic",
    ["World", "Sports", "Business", "Sci/Tech"],
    False,
    {"Sci/Tech": ["sci_tech", "Science and Technology news"], "Business": ["biz", "Economy, markets and companies"]},
)
INTENTS_ALIASED = ("intent", ["Book a flight", "Cancel a booking"], False, {"Book a flight": ["BF-01"]})
ABSTENTIONS_AND_SYNONYMS = [
    (SENTIMENT, "I cannot determine the sentiment of this text.", []),
    (AG_NEWS, "None of these categories fit.", []),
    (SARCASM, "I'm unable to tell whether this is sarcastic.", []),
    (RECEIPTS, "None of these categories fit.", ["Other"]),
    (RECEIPTS, "I cannot determine the category from this receipt.", ["Other"]),
    (SENTIMENT_OR_NONE, "None of these categories fit.", ["None"]),
    (SENTIMENT_OR_NONE, "None", ["None"]),
    (SENTIMENT_OR_NONE, "not negative", []),
    (SENTIMENT_OR_NONE, "Negative.", ["Negative"]),
    (TOPICS_OR_OTHER, "None of these topics apply.", ["other"]),
    (TOPICS_OR_OTHER, "The text is about cooking, which is none of the listed topics.", ["other"]),
    (TOPICS_OR_OTHER, "Sports, and nothing else.", ["sports"]),
    (YES_NO_NONE, "None of the above.", ["None of the above"]),
    (YES_NO_NONE, "None of the above — the text doesn't say.", ["None of the above"]),
    (YES_NO_NONE, "No.", ["No"]),
    (SARCASM, "Not sarcastic.", ["Not Sarcastic"]),
    (AG_NEWS, "Science and Technology", ["Sci/Tech"]),
    (AG_NEWS, "Category: Science & Technology", ["Sci/Tech"]),
    (AG_NEWS, "The article is about science and technology.", ["Sci/Tech"]),
    (AG_NEWS, "It isn't Sci/Tech, it's World.", ["World"]),
    (AG_NEWS, "World news", ["World"]),
    (DEPARTMENTS, "Research and Development", ["R&D"]),
    (DEPARTMENTS, "Research & development (the memo is about a prototype).", ["R&D"]),
    (DEPARTMENTS, "Sales and marketing", ["Sales"]),
    (AREAS, "R&D", ["Research and Development"]),
    (AREAS, "Area: R & D", ["Research and Development"]),
    (AG_NEWS_HINTED, "sci_tech", ["Sci/Tech"]),
    (AG_NEWS_HINTED, "Science and Technology news", ["Sci/Tech"]),
    (AG_NEWS_HINTED, "biz", ["Business"]),
    (AG_NEWS_HINTED, "This is about the economy and markets.", ["Business"]),
    (INTENTS_ALIASED, "BF-01", ["Book a flight"]),
    (INTENTS_ALIASED, "The user wants to cancel a booking.", ["Cancel a booking"]),
]
CORPUS += HELD_OUT + HELD_OUT_AFTER_FIXES + ABSTENTIONS_AND_SYNONYMS

# Answers the reader gets wrong, with what it reads instead: kept honest here rather than tuned away.
KNOWN_MISSES: dict[str, list[str]] = {}


def read(label_set, answer: str) -> list[str]:
    name, labels, multiple, *synonyms = label_set
    found = read_labels(answer, labels, multiple=multiple, threshold=0.8, name=name, synonyms=next(iter(synonyms), {}))
    return [match.label for match in found]


def case_id(case) -> str:
    (name, labels, multiple, *_synonyms), answer, _ = case
    return f"{labels[0]}{'+' if multiple else ''}: {answer[:60]}"


@pytest.mark.parametrize(("label_set", "answer", "expected"), CORPUS, ids=[case_id(case) for case in CORPUS])
def test_reads_what_a_person_reads(label_set, answer, expected):
    if answer in KNOWN_MISSES:
        pytest.xfail(f"known miss: reads {KNOWN_MISSES[answer]}")
    assert read(label_set, answer) == expected


def test_the_reader_is_right_on_at_least_95_percent():
    right = sum(read(label_set, answer) == expected for label_set, answer, expected in CORPUS)
    assert len(CORPUS) >= 60
    assert right / len(CORPUS) >= 0.95, f"{right}/{len(CORPUS)} right"


def test_known_misses_are_still_misses_and_name_what_is_read():
    by_answer = {answer: (label_set, expected) for label_set, answer, expected in CORPUS}
    for answer, wrong in KNOWN_MISSES.items():
        label_set, expected = by_answer[answer]
        assert read(label_set, answer) == wrong != expected


# The reference backend's own test (HumanSignal/label-studio-ml-backend,
# label_studio_ml/examples/llm_interactive/test_api.py, test_predict): a single-choice topic control with
# labels ['sports', 'politics', 'technology'], the model answers "tech" and the prediction is ['technology'].
def test_reference_backend_reads_tech_as_technology():
    matches = read_labels("tech", ["sports", "politics", "technology"], multiple=False, threshold=0.8, name="topic")
    assert [match.label for match in matches] == ["technology"]
    assert 0 < matches[0].confidence < 1


def confidence(answer: str, labels=("Positive", "Negative", "Neutral"), **kwargs) -> float:
    (match,) = read_labels(answer, list(labels), multiple=False, threshold=0.8, **kwargs)
    return match.confidence


def test_confidence_falls_with_the_quality_of_the_match():
    exact_line = confidence("Negative")
    after_prefix = confidence("Sentiment: Negative")
    in_a_sentence = confidence("The sentiment of this review is negative.")
    hedged = confidence("Probably negative.")
    fuzzy = confidence("Negatve")
    abbreviated = confidence("neg")
    assert exact_line == after_prefix == 1.0
    assert 1.0 > in_a_sentence > hedged
    assert 1.0 > fuzzy >= 0.8
    assert in_a_sentence > abbreviated
    assert all(0.0 < value <= 1.0 for value in (in_a_sentence, hedged, fuzzy, abbreviated))


def test_a_choice_among_several_named_labels_is_less_sure_than_a_single_one():
    alone = confidence("The review is positive.")
    among = confidence("Some might read it as negative, but the overall sentiment is positive.")
    assert alone > among > 0


@pytest.mark.parametrize(
    "answer",
    ["This is not sarcastic.", "not sarcastic", "It isn't sarcastic", "Never sarcastic", "not at all sarcastic"],
)
def test_a_negated_label_never_reads_as_the_label(answer):
    for multiple in (False, True):
        labels = [
            m.label for m in read_labels(answer, ["Sarcastic", "Not Sarcastic"], multiple=multiple, threshold=0.8)
        ]
        assert labels == ["Not Sarcastic"]


def test_json_prefers_the_key_named_like_the_control():
    answer = '{"topic": "sports", "sentiment": "Negative", "tone": "Positive"}'
    labels = ["Positive", "Negative", "Neutral"]
    assert [m.label for m in read_labels(answer, labels, multiple=False, threshold=0.8, name="sentiment")] == [
        "Negative"
    ]
    assert [m.label for m in read_labels(answer, labels, multiple=False, threshold=0.8, name="tone")] == ["Positive"]


def test_fuzzy_matching_follows_the_threshold():
    labels = ["Positive", "Negative", "Neutral"]
    assert [m.label for m in read_labels("Negatve", labels, multiple=False, threshold=0.8)] == ["Negative"]
    assert read_labels("Negatve", labels, multiple=False, threshold=0.99) == []


def test_single_choice_gets_one_label_and_multiple_keeps_the_order_named():
    labels = ["sports", "politics", "technology"]
    answer = "Technology, sports"
    assert [m.label for m in read_labels(answer, labels, multiple=True, threshold=0.8)] == ["technology", "sports"]
    assert [m.label for m in read_labels(answer, labels, multiple=False, threshold=0.8)] == ["technology"]


def test_no_labels_or_no_answer_read_nothing():
    assert read_labels("Positive", [], multiple=False, threshold=0.8) == []
    assert read_labels("   \n ", ["Positive"], multiple=False, threshold=0.8) == []


# Rating: bounded by maxRating, None when the answer names no rating that fits.
@pytest.mark.parametrize(
    ("answer", "max_rating", "expected"),
    [
        ("4/5", 5, 4),
        ("I'd rate it 4 out of 5.", 5, 4),
        ("4 stars", 5, 4),
        ("Rating: ★★★★☆", 5, 4),
        ("⭐⭐⭐", 5, 3),
        ("⭐️⭐️⭐️⭐️", 5, 4),
        ("four", 5, 4),
        ("Four stars — great food, slow service.", 5, 4),
        ("**Rating:** 2", 5, 2),
        ("8/10", 5, 4),
        ("7", 10, 7),
        ("9", 5, None),
        ("4.5/5", 5, 5),
        ('{"rating": 3}', 5, 3),
        ("I can't rate this text.", 5, None),
        ("", 5, None),
        ("one star", 5, 1),
    ],
)
def test_read_rating(answer, max_rating, expected):
    assert read_rating(answer, max_rating) == expected


# Number: the first number in range; thousands separators and decimal commas handled.
@pytest.mark.parametrize(
    ("answer", "minimum", "maximum", "expected"),
    [
        ("42", None, None, 42.0),
        ("The total is $1,234.50.", None, None, 1234.5),
        ("Answer: -3", None, None, -3.0),
        ("−7 °C", None, None, -7.0),
        ("Le total est de 1.234,5 €", None, None, 1234.5),
        ("3,5", None, None, 3.5),
        ("Step 1: count. Result: 250", 10, None, 250.0),
        ("about 85%", 0, 100, 85.0),
        ("1,000,000 people", None, None, 1000000.0),
        ("no number here", None, None, None),
        ("150", 0, 100, None),
        ('{"count": 12}', None, None, 12.0),
        ("between 3 and 5", 4, 10, 5.0),
    ],
)
def test_read_number(answer, minimum, maximum, expected):
    assert read_number(answer, minimum, maximum) == expected


TAXONOMY = [
    ["Animals"],
    ["Animals", "Mammals"],
    ["Animals", "Mammals", "Cat"],
    ["Animals", "Mammals", "Dog"],
    ["Animals", "Birds"],
    ["Animals", "Birds", "Eagle"],
    ["Plants"],
    ["Plants", "Trees"],
    ["Plants", "Trees", "Oak"],
    ["Toys", "Cat"],
]


@pytest.mark.parametrize(
    ("answer", "multiple", "expected"),
    [
        ("Eagle", True, [["Animals", "Birds", "Eagle"]]),
        ("Animals > Birds > Eagle", True, [["Animals", "Birds", "Eagle"]]),
        ("Plants: Oak", True, [["Plants", "Trees", "Oak"]]),
        ("Mammals / Cat", True, [["Animals", "Mammals", "Cat"]]),
        ("Toys > Cat", True, [["Toys", "Cat"]]),
        ("The picture shows a dog and an oak tree.", True, [["Animals", "Mammals", "Dog"], ["Plants", "Trees", "Oak"]]),
        ("The picture shows a dog and an oak tree.", False, [["Animals", "Mammals", "Dog"]]),
        ("Birds", True, [["Animals", "Birds"]]),
        ('[["Plants", "Trees"]]', True, [["Plants", "Trees"]]),
        ("Nothing I recognise.", True, []),
    ],
)
def test_read_taxonomy(answer, multiple, expected):
    assert read_taxonomy(answer, TAXONOMY, multiple=multiple, threshold=0.8) == expected


LABEL_SETS = [SENTIMENT, SARCASM, TOPICS, RECEIPTS, INTENTS]
answer_texts = st.text(max_size=300) | st.lists(
    st.sampled_from(["Positive", "not", "sarcastic", "tech", "{", '"label":', "]", "**", "\n", ", ", " or ", "/"]),
    max_size=30,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(answer=answer_texts, label_set=st.sampled_from(LABEL_SETS), threshold=st.floats(0.0, 1.0))
def test_any_answer_reads_only_offered_labels_with_a_confidence_in_range(answer, label_set, threshold):
    name, labels, multiple = label_set
    matches = read_labels(answer, labels, multiple=multiple, threshold=threshold, name=name)
    assert {match.label for match in matches} <= set(labels)
    assert len({match.label for match in matches}) == len(matches)
    assert all(0.0 < match.confidence <= 1.0 for match in matches)
    assert multiple or len(matches) <= 1
    assert read_rating(answer, 5) in {None, 1, 2, 3, 4, 5}


def test_a_long_answer_reads_quickly():
    answer = "The reviewer talks about the food, the staff and the prices at length. " * 400 + "Overall: negative."
    started = time.perf_counter()
    assert [m.label for m in read_labels(answer, RECEIPTS[1] + SENTIMENT[1], multiple=False, threshold=0.8)] == [
        "Negative"
    ]
    assert time.perf_counter() - started < 2.0


# --- answers that decline, none/other choices, synonyms (issue #28) ------------------------------------------


def labels_of(answer: str, labels, multiple: bool = False, **kwargs) -> list[str]:
    return [match.label for match in read_labels(answer, labels, multiple=multiple, threshold=0.8, **kwargs)]


@pytest.mark.parametrize(
    ("answer", "phrase"),
    [
        ("I cannot determine the sentiment of this text.", "cannot determine"),
        ("None of these categories fit.", "none of these"),
        ("I can't tell from this text.", "ca not tell"),
        ("As an AI, I have no opinion.", "as an ai"),
        ("There is not enough information to decide.", "not enough information"),
        ("None.", "none"),
        ("N/A", "n a"),
        ("Unknown", "unknown"),
    ],
)
def test_an_answer_that_declines_is_recognised_with_its_words(answer, phrase):
    assert declining_phrase(answer) == phrase


@pytest.mark.parametrize(
    "answer",
    ["not sarcastic", "Not negative.", "There is no clear sentiment.", "Nothing about sports.",
     "It's unknown territory", "Negative", "No."],
)  # fmt: skip
def test_an_answer_is_no_refusal_to_answer(answer):
    assert declining_phrase(answer) is None


def test_a_declining_answer_reads_nothing_without_a_none_choice():
    assert labels_of("I cannot determine the sentiment of this text.", SENTIMENT[1]) == []
    assert labels_of("None of these categories fit.", ["World", "Sports"], multiple=True) == []


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["Positive", "Negative", "Other"], "Other"),
        (["Positive", "Negative", "None"], "None"),
        (["Yes", "No", "N/A"], "N/A"),
        (["Cats", "Dogs", "Unknown"], "Unknown"),
        (["Cats", "Dogs", "Other (please specify)"], "Other (please specify)"),
        (["Cats", "None of the above", "Other"], "None of the above"),  # the first in config order
    ],
)
def test_a_declining_answer_reads_as_the_configs_none_or_other_choice(labels, expected):
    for multiple in (False, True):
        [match] = read_labels("I cannot determine this.", labels, multiple=multiple, threshold=0.8)
        assert match == LabelMatch(expected, DECLINED, declined=True)


def test_a_none_choice_is_taken_only_when_the_answer_declines():
    labels = ["Positive", "Negative", "Other"]
    assert labels_of("not negative", labels) == []  # an answer, though not one of the labels: no abstention
    assert labels_of("Negative, though I cannot determine how strongly.", labels) == ["Negative"]
    assert labels_of("Dining/Other", ["Dining/Other", "Groceries"]) == ["Dining/Other"]
    assert labels_of("I cannot determine it.", ["Dining/Other", "Groceries"]) == []  # a part is no none choice


def test_a_label_that_is_a_refusal_is_read_as_written():
    """ "None" or "None of the above" as a choice of the config wins over reading the answer as a refusal."""
    labels = ["Yes", "No", "None of the above"]
    assert read_labels("None of the above.", labels, multiple=False, threshold=0.8) == [
        LabelMatch("None of the above", 1.0)
    ]
    assert read_labels("- None", ["Sports", "None"], multiple=True, threshold=0.8) == [LabelMatch("None", 1.0)]
    assert read_labels("Cannot determine", ["Yes", "No", "Cannot determine"], multiple=False, threshold=0.8) == [
        LabelMatch("Cannot determine", 1.0)
    ]


def test_an_alias_or_a_hint_names_its_label():
    labels = ["World", "Sports", "Business", "Sci/Tech"]
    synonyms = {"Sci/Tech": ["sci_tech", "Science and Technology news"], "World": ["3"]}
    assert read_labels("sci_tech", labels, multiple=False, threshold=0.8, synonyms=synonyms) == [
        LabelMatch("Sci/Tech", 1.0)
    ]
    assert labels_of("Label: Science and Technology news", labels, synonyms=synonyms) == ["Sci/Tech"]
    assert labels_of("The text is science and technology news.", labels, synonyms=synonyms) == ["Sci/Tech"]
    assert labels_of("sci_tech", labels) == ["Sci/Tech"]  # its words are the label's: no synonym needed
    assert labels_of("3", labels, synonyms=synonyms) == []  # a bare code is no name: "3 goals" names nothing
    assert labels_of("Science news", ["World", "Sports"], synonyms={"World": ["Global affairs"]}) == []


@pytest.mark.parametrize(
    ("answer", "labels", "expected", "confidence"),
    [
        ("Science and Technology", ["World", "Sci/Tech"], "Sci/Tech", ABBREVIATION),
        ("Science & Technology", ["World", "Sci/Tech"], "Sci/Tech", ABBREVIATION),
        ("Sci/Tech", ["World", "Science and Technology"], "Science and Technology", ABBREVIATION),
        ("R&D", ["Sales", "Research and Development"], "Research and Development", ABBREVIATION),
        ("R & D", ["Sales", "Research & Development"], "Research & Development", ABBREVIATION),
        ("Research and Development", ["Sales", "R&D"], "R&D", ABBREVIATION),
        ("research & development", ["Sales", "R&D"], "R&D", ABBREVIATION),
        ("Clothing & Apparel", ["Groceries", "Clothing/Apparel"], "Clothing/Apparel", EXACT),  # the same words
        ("Arts and Entertainment", ["Sports", "Arts & Entertainment"], "Arts & Entertainment", NAMED),
        ("Science and Technology", ["Sci/Tech", "Science/Technology"], "Science/Technology", NAMED),
        ("The memo is about science and technology.", ["World", "Sci/Tech"], "Sci/Tech", ABBREVIATION),
    ],
)
def test_a_compound_name_is_read_across_joints_and_abbreviations(answer, labels, expected, confidence):
    assert read_labels(answer, labels, multiple=False, threshold=0.8) == [LabelMatch(expected, confidence)]


@pytest.mark.parametrize(
    ("answer", "labels"),
    [
        ("The report covers results and data.", ["Sales", "R&D"]),  # one letter is no abbreviation in prose
        ("It isn't science and technology.", ["World", "Sci/Tech"]),  # negated
    ],
)
def test_a_compound_name_is_not_read_where_a_person_would_not(answer, labels):
    assert labels_of(answer, labels) == []
