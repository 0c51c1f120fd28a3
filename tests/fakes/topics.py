"""A labeled corpus built by code, for few-shot tests and the few-shot benchmark: short notes on four topics.

Each note names two keywords of its topic, each in one of its variants ("football", "footballs", "footballing"),
among filler words every topic shares; the topic's name never appears in it.  So a model cannot tell a note's
topic from the labels alone, and examples that share its keywords (in any variant) tell it.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

TOPICS = {
    "Sport": ["football", "tennis", "marathon", "cycling", "swim", "rugby", "goal", "stadium"],
    "Cooking": ["bread", "pasta", "roast", "cake", "soup", "salad", "oven", "recipe"],
    "Weather": ["rain", "snow", "storm", "heat", "wind", "fog", "frost", "cloud"],
    "Finance": ["share", "bank", "loan", "budget", "tax", "pension", "invoice", "interest"],
}
FILLER = ["today", "the team", "wrote", "a note", "about", "again", "after lunch", "this week", "we talked", "more"]
CONFIG = """
<View>
  <Text name="text" value="$text"/>
  <TextArea name="prompt" toName="text" editable="true" rows="2"/>
  <Choices name="topic" toName="text" choice="single">
    <Choice value="Sport"/><Choice value="Cooking"/><Choice value="Weather"/><Choice value="Finance"/>
  </Choices>
</View>
"""
PROMPT = "Which topic is this note about?"


@dataclass(frozen=True)
class Note:
    text: str
    topic: str


def variant(word: str, rng: random.Random) -> str:
    return rng.choice([word, f"{word}s", f"{word}ing"])


def notes(count: int, seed: int = 0) -> list[Note]:
    """``count`` notes, topics in turn, reproducible from ``seed``."""
    rng = random.Random(seed)
    made = []
    for index in range(count):
        topic = list(TOPICS)[index % len(TOPICS)]
        words = [variant(word, rng) for word in rng.sample(TOPICS[topic], 2)] + rng.sample(FILLER, 4)
        rng.shuffle(words)
        made.append(Note(f"Note {index}: " + " ".join(words) + ".", topic))
    return made


def choice(label: str) -> list[dict]:
    """A ground-truth result choosing ``label``."""
    return [{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


EXAMPLE = re.compile(r"### Example \d+\nInput:\n(.*?)\nAnswer:\n(.*?)(?=\n\n|\Z)", re.DOTALL)
NOTE = re.compile(r"Note \d+: [^.]*\.")


_FILLER_WORDS = {word for phrase in FILLER for word in phrase.split()} | {"note"}


def _words(text: str) -> set[str]:
    """Lower-cased words without their variant endings, filler aside: the keywords a reader would compare."""
    found = re.findall(r"[a-z]+", text.lower())
    return {re.sub(r"(ing|s)$", "", word) for word in found if word not in _FILLER_WORDS}


def answer_from_examples(messages: list[dict], index: int = 0) -> str | dict:
    """A fake model that learns only from the examples in its prompt: it answers the answer of the example that
    shares the most keywords with the note (the first such example on a tie); with no example sharing one, it
    guesses the first label, Sport.  In the examples' form: their JSON object, or plain text."""
    text = "\n".join(str(message.get("content")) for message in messages)
    examples = EXAMPLE.findall(text)
    task = NOTE.findall(str(messages[-1].get("content")))[-1]
    overlap = [len(_words(given) & _words(task)) for given, _answer in examples]
    best = max(range(len(examples)), key=lambda i: (overlap[i], -i), default=None)
    structured = "Answer with one JSON object" in text  # the backend's instructions in a structured mode
    chosen = examples[best][1] if best is not None and overlap[best] > 0 else None
    if chosen is None:
        return {"topic": "Sport"} if structured else "Sport"
    return json.loads(chosen) if chosen.startswith("{") else chosen
