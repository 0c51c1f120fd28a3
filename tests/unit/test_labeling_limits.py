"""Labeling configs from anyone: no DTD of any kind, and a parsed-config cache bounded in bytes."""

import pytest

from shared.domain.errors import LabelingConfigError
from shared.domain.labeling.spec import _SpecCache, parse_labeling_config

CONFIG = '<View><Text name="text" value="$text"/><TextArea name="prompt" toName="text"/>{}</View>'


def config_with(options: int, tag: str = "a") -> str:
    choices = "".join(f'<Choice value="{tag} {k}"/>' for k in range(options))
    return CONFIG.format(f'<Choices name="c" toName="text">{choices}</Choices>')


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE View SYSTEM "http://127.0.0.1:9/x.dtd">',
        '<!DOCTYPE View PUBLIC "-//A//B" "x.dtd">',
        "<!DOCTYPE View>",
    ],
)
def test_any_doctype_is_refused(doctype):
    with pytest.raises(LabelingConfigError, match="must not declare a DTD or entities"):
        parse_labeling_config(doctype + config_with(2), "prompt")


def test_the_cache_keeps_configs_within_its_byte_budget():
    small, big = config_with(2), config_with(300, "b")
    cache = _SpecCache(size=256, max_bytes=len(big) + len(small))
    first = cache.get(small, "prompt", 10**6)
    cache.get(big, "prompt", 10**6)
    assert len(cache) == 2 and cache.held_bytes == len(big) + len(small)
    assert cache.get(small, "prompt", 10**6) is first  # a hit
    cache.get(config_with(300, "c"), "prompt", 10**6)  # evicts the least recently used: the first big one
    assert len(cache) == 2 and cache.held_bytes <= cache.max_bytes


def test_a_config_over_the_budget_is_parsed_but_not_kept():
    cache = _SpecCache(size=256, max_bytes=100)
    spec = cache.get(config_with(2), "prompt", 10**6)
    assert spec.prompt.name == "prompt" and len(cache) == 0 and cache.held_bytes == 0
