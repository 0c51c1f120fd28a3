"""Who may call the API (shared.domain.callers): bind addresses, Host names, Origins."""

from __future__ import annotations

import pytest

from shared.domain.callers import host_allowed, host_name, is_loopback, origin_allowed, unprotected_listening


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST.", "ls.localhost"])
def test_loopback_addresses_and_names(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.0.0.5", "192.168.1.2", "example.com", "localhost.evil"])
def test_anything_else_is_not_loopback(host):
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:9090", "localhost"), ("[::1]:9090", "::1"), ("[::1]", "::1"), ("API:9090", "api"), ("a.b.", "a.b")],
)
def test_the_name_of_a_host_header(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize(
    "header", ["localhost:9090", "127.0.0.1:9090", "[::1]:9090", "10.0.0.5:9090", "[fd00::5]", "x.localhost"]
)
def test_loopback_names_and_addresses_are_always_allowed(header):
    assert host_allowed(header, [])


@pytest.mark.parametrize("header", ["evil.example", "evil.example:9090", "api:9090", "10.0.0.5.nip.io", ""])
def test_other_names_need_allowed_hosts(header):
    assert not host_allowed(header, [])


def test_allowed_hosts_lists_names_and_star_accepts_any():
    assert host_allowed("LLM.Example:9090", ["llm.example"])
    assert not host_allowed("evil.example", ["llm.example"])
    assert host_allowed("evil.example", ["*"])


def test_an_origin_must_be_listed_by_scheme_host_and_port():
    allowed = ["https://app.example"]
    assert origin_allowed("https://app.example", allowed)
    assert origin_allowed("https://app.example:443", allowed)
    for page in ("http://app.example", "https://app.example:8443", "https://evil.example", "null", ""):
        assert not origin_allowed(page, allowed), page
    assert not origin_allowed("https://app.example", [])


def test_listening_beyond_loopback_needs_basic_auth_or_the_opt_out():
    refusal = unprotected_listening("0.0.0.0", has_basic_auth=False, allow_unauthenticated=False)
    assert refusal is not None
    for name in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS", "ALLOW_UNAUTHENTICATED=true", "--host 127.0.0.1"):
        assert name in refusal
    assert unprotected_listening("10.0.0.5", has_basic_auth=True, allow_unauthenticated=False) is None
    assert unprotected_listening("0.0.0.0", has_basic_auth=False, allow_unauthenticated=True) is None
    assert unprotected_listening("127.0.0.1", has_basic_auth=False, allow_unauthenticated=False) is None
    assert unprotected_listening("", has_basic_auth=False, allow_unauthenticated=False) is not None
