import re

import pytest

from shared.domain.config import DEFAULT_PROMPT_TEMPLATE, ConfigError, ExtraParams, load_settings


def test_defaults_are_the_reference_backends():
    settings = load_settings()
    assert settings.prompt_prefix == "prompt"
    assert settings.use_internal_prompt_template is True
    # the reference's template with the task's data last, for the provider's prefix cache
    assert settings.prompt_template == "Task Directive: {prompt}\n\nSource Text: {text}" == DEFAULT_PROMPT_TEMPLATE
    assert settings.batch_api == "off" and settings.defaults.batch_api == "off"
    assert (settings.batch_api_min_tasks, settings.batch_api_max_requests, settings.llm_batch_discount) == (
        1000,
        50_000,
        0.5,
    )
    assert settings.openai_model == "gpt-3.5-turbo"
    assert settings.openai_provider == "openai"
    assert settings.temperature == 0.7
    assert settings.num_responses == 1
    assert settings.azure_api_version == "2023-05-15"
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.default_prompt is None and settings.openai_api_key is None


def test_environment_variables_are_read(monkeypatch):
    env = {
        "OPENAI_PROVIDER": "azure",
        "OPENAI_MODEL": "gpt-4o",
        "TEMPERATURE": "0.2",
        "NUM_RESPONSES": "3",
        "USE_INTERNAL_PROMPT_TEMPLATE": "0",
        "PROMPT_PREFIX": "my-prompt",
        "AZURE_RESOURCE_ENDPOINT": "https://example.openai.azure.com",
        "AZURE_DEPLOYMENT_NAME": "dep",
        "OLLAMA_ENDPOINT": "http://ollama:11434/v1",
        "OPENAI_BASE_URL": "http://proxy/v1",
        "LOG_LEVEL": "debug",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert (settings.openai_provider, settings.openai_model) == ("azure", "gpt-4o")
    assert (settings.temperature, settings.num_responses) == (0.2, 3)
    assert settings.use_internal_prompt_template is False
    assert settings.prompt_prefix == "my-prompt"
    assert settings.azure_resource_endpoint == "https://example.openai.azure.com"
    assert settings.azure_deployment_name == "dep"
    assert settings.ollama_endpoint == "http://ollama:11434/v1"
    assert settings.openai_base_url == "http://proxy/v1"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value", "accepts"),
    [
        ("TEMPERATURE", "abc", "valid number"),
        ("TEMPERATURE", "3", "less than or equal to 2"),
        ("NUM_RESPONSES", "0", "greater than or equal to 1"),
        ("OPENAI_PROVIDER", "anthropic", "'openai', 'azure' or 'ollama'"),
        ("USE_INTERNAL_PROMPT_TEMPLATE", "maybe", "valid boolean"),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(monkeypatch, variable, value, accepts):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert f"{variable}={value!r}" in message
    assert accepts in message


def test_secret_values_are_not_echoed_in_errors():
    with pytest.raises(ConfigError) as caught:
        load_settings(openai_api_key=["not", "a", "string"], temperature="x")
    assert "not" not in str(caught.value).replace("TEMPERATURE", "")
    assert "OPENAI_API_KEY:" in str(caught.value)


def test_default_prompt_may_be_a_file(tmp_path, monkeypatch):
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("Classify: {text}\nLabels: {labels}\n")
    monkeypatch.setenv("DEFAULT_PROMPT", str(prompt_file))
    assert load_settings().default_prompt == "Classify: {text}\nLabels: {labels}"
    monkeypatch.setenv("DEFAULT_PROMPT", "Summarise {text}")
    assert load_settings().default_prompt == "Summarise {text}"


def test_empty_variables_mean_unset(monkeypatch):
    for name in ("DEFAULT_PROMPT", "OPENAI_API_KEY", "AZURE_RESOURCE_ENDPOINT", "BASIC_AUTH_USER", "TEMPERATURE"):
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert settings.temperature == 0.7
    assert settings.default_prompt is None and settings.openai_api_key is None
    assert settings.azure_resource_endpoint is None and settings.basic_auth_user is None


def test_extra_params_override_per_project():
    # The project names an Ollama, a model and two answers: allowed only since the operator allows each.
    settings = load_settings(
        openai_api_key="sk-env", allowed_llm_endpoints="http://o:11434", allowed_models="llama3", max_num_responses=2
    )
    extra = ExtraParams.parse(
        '{"provider": "ollama", "MODEL": "llama3", "temperature": 0, "num_responses": 2,'
        ' "ollama_endpoint": "http://o:11434/v1", "prompt_template": "T {text} {prompt}",'
        ' "use_internal_prompt_template": false}'
    )
    config = settings.for_project(extra)
    assert config.llm.provider == "ollama" and config.llm.model == "llama3"
    assert config.llm.temperature == 0.0 and config.llm.num_responses == 2
    assert config.llm.endpoint == "http://o:11434/v1"
    assert config.prompt.template == "T {text} {prompt}"
    assert config.prompt.use_internal_template is False
    assert settings.defaults.llm.model == "gpt-3.5-turbo"


def test_extra_params_accept_environment_names_and_reference_keys():
    extra = ExtraParams.parse(
        {
            "OPENAI_PROVIDER": "azure",
            "api_key": "sk-project",
            "resource_endpoint": "https://r.openai.azure.com",
            "deployment_name": "d1",
            "api_version": "2024-02-01",
        }
    )
    operator = load_settings(allowed_llm_endpoints="https://r.openai.azure.com", allowed_models="d1")
    config = operator.for_project(extra)
    assert config.llm.provider == "azure"
    assert config.llm.api_key.get_secret_value() == "sk-project"
    assert (config.llm.azure_endpoint, config.llm.azure_deployment) == ("https://r.openai.azure.com", "d1")
    assert config.llm.azure_api_version == "2024-02-01"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"model": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"modle": "x"}, "extra_params.modle: unknown key (accepted keys: provider, openai_provider, model"),
        ({"temperature": 5}, "extra_params.temperature"),
        ({"provider": "x"}, "'openai', 'azure' or 'ollama'"),
    ],
)
def test_bad_extra_params_are_named(raw, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        ExtraParams.parse(raw)


def test_no_extra_params_is_fine():
    assert ExtraParams.parse(None) == ExtraParams.parse("") == ExtraParams()


def test_output_mode_comes_from_the_environment_and_extra_params(monkeypatch):
    assert load_settings().output_mode == "auto" == load_settings().defaults.output_mode
    monkeypatch.setenv("OUTPUT_MODE", "tools")
    settings = load_settings()
    assert settings.output_mode == "tools" == settings.defaults.output_mode
    assert settings.for_project(ExtraParams.parse({"OUTPUT_MODE": "text"})).output_mode == "text"
    assert settings.for_project(ExtraParams.parse({"output_mode": "json_schema"})).output_mode == "json_schema"
    monkeypatch.setenv("OUTPUT_MODE", "xml")
    with pytest.raises(
        ConfigError, match="OUTPUT_MODE='xml': Input should be 'auto', 'json_schema', 'tools' or 'text'"
    ):
        load_settings()
    with pytest.raises(ConfigError, match="extra_params.output_mode"):
        ExtraParams.parse({"output_mode": "yaml"})


def test_batch_api_comes_from_the_environment_and_extra_params(monkeypatch):
    monkeypatch.setenv("BATCH_API", "auto")
    settings = load_settings()
    assert settings.batch_api == "auto" == settings.defaults.batch_api
    assert settings.for_project(ExtraParams.parse({"batch_api": "on"})).batch_api == "on"
    assert settings.for_project(ExtraParams.parse({"BATCH_API": "off"})).batch_api == "off"
    with pytest.raises(ConfigError, match="extra_params.batch_api"):
        ExtraParams.parse({"batch_api": "always"})
    monkeypatch.setenv("BATCH_API_MAX_REQUESTS", "60000")
    with pytest.raises(ConfigError, match="BATCH_API_MAX_REQUESTS='60000'"):
        load_settings()


def test_a_push_call_may_not_be_sized_below_its_smallest(monkeypatch):
    monkeypatch.setenv("PUSH_MIN_PREDICTIONS", "500")
    monkeypatch.setenv("PUSH_MAX_PREDICTIONS", "400")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "PUSH_MAX_PREDICTIONS='400'" in str(caught.value)
    assert "at least PUSH_MIN_PREDICTIONS (500)" in str(caught.value)
