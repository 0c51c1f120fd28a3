"""Which key a project's LLM calls carry: the operator's only to the endpoints the operator configured."""

import pytest

from shared.domain.config import ExtraParams, load_settings
from shared.domain.errors import ConfigError

OPERATOR_KEY = "sk-operator-key-1"


def key_for(settings, **extra):
    key = settings.for_project(ExtraParams.parse(extra)).llm.api_key
    return key.get_secret_value() if key else None


def test_the_configured_endpoints_get_the_operators_key():
    settings = load_settings(
        openai_api_key=OPERATOR_KEY, openai_base_url="http://proxy:8000/v1", azure_resource_endpoint="https://r.azure"
    )
    assert key_for(settings) == OPERATOR_KEY
    assert key_for(settings, model="gpt-4o", base_url="http://PROXY:8000/v1/") == OPERATOR_KEY  # same origin
    assert key_for(settings, provider="azure") == OPERATOR_KEY
    assert key_for(settings, provider="ollama") == OPERATOR_KEY  # OLLAMA_ENDPOINT's default is the operator's


@pytest.mark.parametrize(
    "extra",
    [
        {"base_url": "http://collector.example/v1"},
        {"base_url": "http://proxy:8001/v1"},  # the operator's host, another port: another server
        {"base_url": "https://api.openai.com.collector.example/v1"},
        {"provider": "azure", "azure_endpoint": "https://collector.example"},
        {"provider": "ollama", "ollama_endpoint": "http://collector.example:11434/v1"},
    ],
)
def test_any_other_endpoint_needs_the_projects_own_key(extra):
    settings = load_settings(openai_api_key=OPERATOR_KEY, openai_base_url="http://proxy:8000/v1")
    with pytest.raises(ConfigError, match="not one this backend's operator configured.*ALLOWED_LLM_ENDPOINTS"):
        key_for(settings, **extra)
    assert key_for(settings, **extra, api_key="sk-project-2") == "sk-project-2"


def test_the_allowlist_adds_endpoints_and_keeps_the_configured_ones():
    settings = load_settings(
        openai_api_key=OPERATOR_KEY, allowed_llm_endpoints="http://gpu-1:8000/v1, http://gpu-2:8000"
    )
    assert key_for(settings, base_url="http://gpu-2:8000/v1") == OPERATOR_KEY
    assert key_for(settings) == OPERATOR_KEY  # api.openai.com, the default endpoint
    assert settings.allowed_llm_endpoints == ["http://gpu-1:8000/v1", "http://gpu-2:8000"]
    assert load_settings(allowed_llm_endpoints='["http://a:1"]').allowed_llm_endpoints == ["http://a:1"]
