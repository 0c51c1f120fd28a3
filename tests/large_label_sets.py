"""Labeling configs with thousands of values, for the label selection tests (unit, integration, e2e).

Each value is named with made-up words that no other value shares (``Dravelin Kesomar``), so a text that
mentions one of them names exactly one value, as a real text naming a specific category would.
"""

from __future__ import annotations

import itertools

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u")


def made_up_words(count: int) -> list[str]:
    """``count`` distinct capitalised three-syllable words, always the same ones, spread over all such words so
    that neighbours differ in most letters (a free-text reader would take one for its neighbour otherwise)."""
    syllables = [onset + vowel for onset, vowel in itertools.product(_ONSETS, _VOWELS)]
    size = len(syllables)
    every = size**3
    assert count <= every
    picks = (index * _STRIDE % every for index in range(count))
    return [
        (syllables[n // size**2] + syllables[n // size % size] + syllables[n % size]).capitalize() + "n" for n in picks
    ]


_STRIDE = 104_729  # a prime: coprime with the number of words, so the picks never repeat


def own_word(value: str | list[str]) -> str:
    """The word that names one value and no other (for a Taxonomy path, its last node's), as a text writes it."""
    return (value[-1] if isinstance(value, list) else value).split()[0].lower()


def _view(controls: str) -> str:
    return f'<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/>{controls}</View>'


def large_choices(count: int = 3000) -> tuple[str, list[str]]:
    """A Choices of ``count`` values (every third with an alias, every fifth with a hint), and the values."""
    words = made_up_words(2 * count)
    values = [f"{words[2 * i]} {words[2 * i + 1]}" for i in range(count)]
    choices = []
    for index, value in enumerate(values):
        alias = f' alias="code_{index}"' if index % 3 == 0 else ""
        hint = f' hint="known as {words[2 * index + 1].lower()}ite"' if index % 5 == 0 else ""
        choices.append(f'<Choice value="{value}"{alias}{hint}/>')
    return _view(f'<Choices name="category" toName="text">{"".join(choices)}</Choices>'), values


def large_taxonomy(groups: int = 50, per_group: int = 99) -> tuple[str, list[list[str]]]:
    """A Taxonomy of ``groups`` branches of ``per_group`` leaves each (50 × 99 + 50 = 5,000 selectable values,
    as Label Studio's default lets any node be chosen), and every leaf's path."""
    words = made_up_words(groups + groups * per_group)
    branches, leaves = [], []
    for group in range(groups):
        name = words[group]
        children = [f"{words[groups + group * per_group + i]} {name}" for i in range(per_group)]
        leaves.extend([name, child] for child in children)
        inner = "".join(f'<Choice value="{child}"/>' for child in children)
        branches.append(f'<Choice value="{name}">{inner}</Choice>')
    return _view(f'<Taxonomy name="topic" toName="text">{"".join(branches)}</Taxonomy>'), leaves
