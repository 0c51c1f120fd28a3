from pydantic import SecretStr

from shared.domain.config import load_settings
from shared.domain.digests import digest, endpoint_key, llm_fields
from shared.domain.versions import model_version
from tests.conftest import labeling_config


def test_a_digest_does_not_depend_on_the_order_of_the_fields():
    assert digest({"a": 1, "b": [2, 3]}) == digest({"b": [2, 3], "a": 1}) != digest({"a": 1, "b": [3, 2]})


def test_every_llm_field_that_shapes_an_answer_changes_the_model_version_and_only_those():
    config = load_settings().defaults
    llm = config.llm
    sarcasm = labeling_config("sarcasm")
    changed = {
        "model": "gpt-4o",
        "temperature": 0.5,
        "num_responses": 3,
        "base_url": "https://proxy.example/v1",
        "azure_deployment": "other",
    }
    for name, value in changed.items():
        other = llm.model_copy(update={name: value})
        assert llm_fields(other) != llm_fields(llm), name
        assert model_version(config.model_copy(update={"llm": other}), sarcasm, "p") != model_version(
            config, sarcasm, "p"
        ), name
    for name, value in {"timeout": llm.timeout + 1, "max_retries": 9, "api_key": SecretStr("sk-other")}.items():
        other = llm.model_copy(update={name: value})
        assert llm_fields(other) == llm_fields(llm) and endpoint_key(other) == endpoint_key(llm), name


def test_the_endpoint_key_names_provider_endpoint_and_model():
    llm = load_settings().defaults.llm
    assert len(endpoint_key(llm)) == 16
    assert endpoint_key(llm.model_copy(update={"model": "gpt-4o"})) != endpoint_key(llm)
