"""Which model answers and how many answers a call asks for are the operator's: ALLOWED_MODELS and
MAX_NUM_RESPONSES bound what a project's extra params may ask."""

import pytest

from shared.domain.config import ExtraParams, load_settings
from shared.domain.errors import ConfigError


def llm_for(settings, **extra):
    return settings.for_project(ExtraParams.parse(extra)).llm


def test_by_default_a_project_may_name_only_the_configured_model():
    settings = load_settings(openai_model="gpt-4o-mini")
    assert llm_for(settings, model="gpt-4o-mini").model == "gpt-4o-mini"
    with pytest.raises(ConfigError, match=r"extra_params\.model='gpt-4o' is not allowed: .* allows gpt-4o-mini; "):
        llm_for(settings, model="gpt-4o")
    with pytest.raises(ConfigError, match="ALLOWED_MODELS"):
        llm_for(settings, model="gpt-4o", api_key="sk-project-own-1")  # a key of its own changes nothing


def test_allowed_models_adds_models_and_a_star_allows_any():
    settings = load_settings(openai_model="gpt-4o-mini", allowed_models="gpt-4o, gpt-4.1-nano")
    assert settings.allowed_models == ["gpt-4o", "gpt-4.1-nano"]
    assert llm_for(settings, model="gpt-4.1-nano").model == "gpt-4.1-nano"
    with pytest.raises(ConfigError, match="allows gpt-4o-mini, gpt-4o, gpt-4.1-nano; the operator may add it to"):
        llm_for(settings, OPENAI_MODEL="o1")
    assert llm_for(load_settings(allowed_models="*"), model="o1").model == "o1"


def test_an_azure_deployment_is_a_model_choice_too():
    settings = load_settings(
        openai_provider="azure", azure_resource_endpoint="https://r.azure", azure_deployment_name="mini"
    )
    assert llm_for(settings, azure_deployment="mini").azure_deployment == "mini"
    with pytest.raises(ConfigError, match=r"extra_params\.azure_deployment='big' is not allowed: .*ALLOWED_MODELS"):
        llm_for(settings, deployment_name="big")
    assert llm_for(load_settings(allowed_models="big"), azure_deployment="big").azure_deployment == "big"


def test_num_responses_is_capped_at_num_responses_unless_the_operator_raises_the_cap():
    settings = load_settings()
    assert llm_for(settings).num_responses == 1
    with pytest.raises(ConfigError, match=r"num_responses=20 is over this backend's cap of 1 .*MAX_NUM_RESPONSES"):
        llm_for(settings, num_responses=20)
    operators = load_settings(num_responses=3)  # the reference's NUM_RESPONSES keeps working, and is the cap
    assert llm_for(operators).num_responses == 3 and llm_for(operators, num_responses=2).num_responses == 2
    with pytest.raises(ConfigError, match="cap of 3"):
        llm_for(operators, num_responses=4)
    raised = load_settings(max_num_responses=5)
    assert llm_for(raised).num_responses == 1 and llm_for(raised, num_responses=5).num_responses == 5
    with pytest.raises(ConfigError, match="cap of 5"):
        llm_for(raised, num_responses=6)
