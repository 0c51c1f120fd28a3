"""Every secret the process holds is masked wherever text leaves: errors, job records, the log."""

import logging
import random
import re
import string

from pydantic import SecretStr

from shared.domain.config import Settings
from shared.redaction import RedactingFilter, SecretRegistry, redact, remember_extra_params, remember_settings
from tests.unit.steps import LINEAR_BOUND, growth


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


# --- a secret echoed encoded or cut short ---------------------------------------------------------------------

KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"  # 32 characters


def registry_knowing(*secrets):
    registry = SecretRegistry()
    registry.remember(*secrets)
    return registry


def test_a_secret_echoed_in_base64_or_percent_encoding_is_masked():
    import base64
    from urllib.parse import quote, quote_plus

    registry = registry_knowing(KEY, "p@ss w/rd+1")
    raw = KEY.encode()
    echoes = [
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        quote("p@ss w/rd+1", safe=""),
        quote("p@ss w/rd+1", safe="").lower(),
        quote_plus("p@ss w/rd+1"),
    ]
    for echo in echoes:
        assert registry.redact(f"provider said: {echo}.") == "provider said: ***.", echo
    # inside a longer encoded value (a Basic header "user:KEY"), whatever the user name's length
    for user in ("u:", "us:", "use:"):
        header = base64.b64encode(user.encode() + raw).decode()
        masked = registry.redact(header)
        # what stays: the user name's characters, and a last character that holds a few bits of the key
        assert re.fullmatch(r"[A-Za-z0-9+/]{2,6}\*\*\*[A-Za-z0-9+/]?=*", masked), (user, masked)


def test_a_secret_cut_short_is_masked_down_to_twelve_characters():
    registry = registry_knowing(KEY, "short-secret-15")  # 15 characters: masked only whole
    assert registry.redact(f"key {KEY[:12]}... rejected") == "key ***... rejected"
    assert registry.redact(f"Incorrect API key provided: sk-proj-****{KEY[-12:]}.") == (
        "Incorrect API key provided: sk-proj-*******."
    )
    assert registry.redact(f"[{KEY[7:25]}]") == "[***]"
    assert registry.redact(f"key {KEY[:11]}…") == f"key {KEY[:11]}…"  # 11 characters say too little to mask
    assert registry.redact("short-secret-15 and short-secret") == "*** and short-secret"


def test_ordinary_text_is_left_as_it_is():
    registry = registry_knowing(KEY, "correct-horse-battery-staple", "admin:flower-pass-4")
    prose = (
        "The administrator reset the password of the admin account; the correct horse was fed. "
        "Projects: 12, tasks: 2,000, model gpt-4o-mini, sk-proj keys rotate monthly. "
    ) * 50
    assert registry.redact(prose) == prose
    assert registry.redact("correct-horse-battery") == "***"  # 21 characters of a 28-character secret


def test_redacting_grows_linearly_with_the_text_whatever_the_number_of_secrets():
    rng = random.Random(3)
    keys = ["sk-proj-" + "".join(rng.choice(string.ascii_letters) for _ in range(40)) for _ in range(300)]
    many = registry_knowing(*keys)
    line = f"task 12 predicted with {keys[42]}, then sk-proj-****{keys[7][-4:]} refused ({keys[9][:20]}…); "
    assert many.redact(line) == f"task 12 predicted with ***, then sk-proj-****{keys[7][-4:]} refused (***…); "
    assert growth(lambda n: lambda: many.redact(line * n), 50) <= LINEAR_BOUND
