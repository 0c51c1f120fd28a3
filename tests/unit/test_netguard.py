"""Which addresses count as private, in every spelling, and which hosts the operator's settings trust."""

import pytest

from shared.adapters.netguard import AddressPolicy, is_public_address
from shared.domain.config import Settings


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo around 127.0.0.1
        "224.0.0.1",
        "fe80::1%eth0",
    ],
)
def test_private_addresses_in_any_form(address):
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses(address):
    assert is_public_address(address)


@pytest.mark.parametrize(
    "host",
    ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "0x7f000001", "localhost", "LOCALHOST.", "ip6-localhost"],
)
def test_every_spelling_of_this_machine_is_refused(host):
    assert AddressPolicy().refusal(host, 80) is not None


def test_the_operators_hosts_are_trusted_with_their_port_and_allowed_private_hosts_with_any():
    settings = Settings(
        label_studio_url="http://localhost:8080",
        openai_base_url="http://10.0.0.5:8000/v1",
        allowed_private_hosts="ls.internal, 192.168.1.20",
    )
    policy = AddressPolicy.from_settings(settings)
    assert policy.refusal("localhost", 8080) is None
    assert policy.refusal("localhost", 6379) is not None  # the same host, another port: not configured
    assert policy.refusal("10.0.0.5", 8000) is None
    assert policy.refusal("localhost", 11434) is None  # OLLAMA_ENDPOINT's default
    assert policy.refusal("192.168.1.20", 5432) is None and policy.refusal("LS.internal", 1) is None
    assert policy.refusal("192.168.1.21", 80) is not None
