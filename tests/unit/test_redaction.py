"""Every secret the process holds is masked wherever text leaves: errors, job records, the log."""

import logging

from pydantic import SecretStr

from shared.domain.config import Settings
from shared.redaction import RedactingFilter, SecretRegistry, redact, remember_extra_params, remember_settings


def test_remembered_secrets_are_masked_longest_first():
    registry = SecretRegistry()
    registry.remember("token-abc", SecretStr("token-abc-longer"), None, "pw")  # "pw": too short to mask
    assert registry.redact("a token-abc-longer and a token-abc, pw") == "a *** and a ***, pw"


def test_the_settings_and_project_secrets_are_known():
    settings = Settings(
        openai_api_key="sk-env-key-1",
        label_studio_api_key="ls-key-22",
        basic_auth_pass="basic-pass-3",
        flower_basic_auth="admin:flower-pass-4",
        redis_url="redis://:redis-pass-5@localhost:6379/0",
    )
    remember_settings(settings)
    remember_extra_params({"API_KEY": "sk-project-6", "model": "gpt-4o-mini"})
    text = "sk-env-key-1 ls-key-22 basic-pass-3 flower-pass-4 redis-pass-5 sk-project-6 gpt-4o-mini"
    assert redact(text) == "*** *** *** *** *** *** gpt-4o-mini"


def test_log_records_and_their_tracebacks_are_masked(caplog):
    remember_extra_params({"api_key": "sk-in-a-traceback-7"})
    logger = logging.getLogger("test.redaction")
    handler = caplog.handler
    handler.addFilter(RedactingFilter())
    try:
        try:
            raise ValueError("provider said: bad key sk-in-a-traceback-7")
        except ValueError:
            logger.exception("call failed with %s", "sk-in-a-traceback-7")
    finally:
        handler.removeFilter(handler.filters[-1])
    assert "sk-in-a-traceback-7" not in caplog.text
    assert "call failed with ***" in caplog.text and "bad key ***" in caplog.text
