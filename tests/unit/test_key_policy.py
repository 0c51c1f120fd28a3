"""Where a project's LLM calls go and which key they carry: only to the operator's endpoints, the operator's key
only there, whatever key the project brings."""

import pytest

from shared.domain.config import ExtraParams, load_settings
from shared.domain.errors import ConfigError

OPERATOR_KEY = "sk-operator-key-1"
PROJECT_KEY = "sk-project-2"


def key_for(settings, **extra):
    key = settings.for_project(ExtraParams.parse(extra)).llm.api_key
    return key.get_secret_value() if key else None


def test_the_configured_endpoints_get_the_operators_key():
    settings = load_settings(
        openai_api_key=OPERATOR_KEY,
        openai_base_url="http://proxy:8000/v1",
        azure_resource_endpoint="https://r.azure",
        ollama_endpoint="http://gpu:11434/v1",
    )
    assert key_for(settings) == OPERATOR_KEY
    assert key_for(settings, base_url="http://PROXY:8000/v1/") == OPERATOR_KEY  # same origin
    assert key_for(settings, provider="azure") == OPERATOR_KEY
    assert key_for(settings, provider="ollama") == OPERATOR_KEY  # OLLAMA_ENDPOINT set: the operator's


@pytest.mark.parametrize("own_key", [{}, {"api_key": PROJECT_KEY}])
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"base_url": "http://collector.example/v1"}, "base_url"),
        ({"base_url": "https://collector.invalid/v1"}, "base_url"),  # a name that does not resolve
        ({"base_url": "http://proxy:8001/v1"}, "base_url"),  # the operator's host, another port: another server
        ({"base_url": "https://api.openai.com.collector.example/v1"}, "base_url"),
        ({"provider": "azure", "azure_endpoint": "https://collector.example"}, "azure_endpoint"),
        ({"provider": "ollama", "ollama_endpoint": "http://collector.example:11434/v1"}, "ollama_endpoint"),
        ({"ollama_endpoint": "http://collector.example:11434/v1"}, "ollama_endpoint"),  # named, even if unused
    ],
)
def test_any_other_endpoint_is_refused_even_with_the_projects_own_key(extra, named, own_key):
    settings = load_settings(openai_api_key=OPERATOR_KEY, openai_base_url="http://proxy:8000/v1")
    with pytest.raises(ConfigError, match=rf"extra_params\.{named}: .* is not used: .*ALLOWED_LLM_ENDPOINTS"):
        key_for(settings, **extra, **own_key)


@pytest.mark.parametrize(
    ("environment", "provider", "setting"),
    [
        ({}, "ollama", "OLLAMA_ENDPOINT"),  # Ollama's default address is not the operator's
        ({"openai_provider": "azure", "azure_resource_endpoint": "https://r.azure"}, "openai", "OPENAI_BASE_URL"),
        ({}, "azure", "AZURE_RESOURCE_ENDPOINT"),
        ({"openai_provider": "ollama"}, "openai", "OPENAI_BASE_URL"),
    ],
)
def test_a_provider_the_operator_did_not_configure_is_refused(environment, provider, setting):
    settings = load_settings(openai_api_key=OPERATOR_KEY, **environment)
    with pytest.raises(ConfigError, match=rf"extra_params\.provider='{provider}' is not used: .*{setting}"):
        key_for(settings, provider=provider)
    with pytest.raises(ConfigError, match=setting):
        key_for(settings, provider=provider, api_key=PROJECT_KEY)


def test_the_operators_own_ollama_at_its_default_address_gets_no_key():
    settings = load_settings(openai_api_key=OPERATOR_KEY, openai_provider="ollama")
    assert key_for(settings) is None  # the client then sends the placeholder Ollama ignores
    assert key_for(settings, provider="ollama") is None
    assert key_for(load_settings(openai_api_key=OPERATOR_KEY, ollama_endpoint="http://localhost:11434/v1")) is not None


def test_the_allowlist_adds_endpoints_and_keeps_the_configured_ones():
    settings = load_settings(
        openai_api_key=OPERATOR_KEY, allowed_llm_endpoints="http://gpu-1:8000/v1, http://gpu-2:8000"
    )
    assert key_for(settings, base_url="http://gpu-2:8000/v1") == OPERATOR_KEY
    assert key_for(settings, base_url="http://gpu-2:8000/v1", api_key=PROJECT_KEY) == PROJECT_KEY
    assert key_for(settings, provider="ollama", ollama_endpoint="http://gpu-1:8000/v1") == OPERATOR_KEY
    assert key_for(settings) == OPERATOR_KEY  # api.openai.com, the default endpoint
    assert key_for(settings, api_key=PROJECT_KEY) == PROJECT_KEY  # the operator's endpoint, the project's key
    assert settings.allowed_llm_endpoints == ["http://gpu-1:8000/v1", "http://gpu-2:8000"]
    assert load_settings(allowed_llm_endpoints='["http://a:1"]').allowed_llm_endpoints == ["http://a:1"]
