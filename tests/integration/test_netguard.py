"""The HTTP transports under the openai client (httpx2) and the Label Studio SDK (httpx): the address policy at
connect time and the request's deadline on every read, against loopback listeners."""

import time

import httpcore
import httpcore2
import httpx
import httpx2
import pytest

from shared.adapters.deadline import deadline_after
from shared.adapters.netguard import AddressPolicy, guarded_transport
from tests.fakes.recorder import RecordingServer, http_response, send

FLAVOURS = [(httpx, httpcore), (httpx2, httpcore2)]


@pytest.fixture
def listener():
    with RecordingServer(lambda request, handler: send(handler, 200, {"ok": True})) as server:
        yield server


@pytest.mark.parametrize(("http", "core"), FLAVOURS, ids=["httpx", "httpx2"])
def test_a_private_host_that_no_one_allowed_is_never_connected_to(listener, http, core):
    with http.Client(transport=guarded_transport(http, core, AddressPolicy())) as client:
        with pytest.raises(http.ConnectError, match="127.0.0.1 is a loopback, private or link-local address"):
            client.get(f"{listener.url}/x")
    assert listener.requests == []


@pytest.mark.parametrize(("http", "core"), FLAVOURS, ids=["httpx", "httpx2"])
def test_allowed_and_configured_hosts_are_reached(listener, http, core):
    port = int(listener.url.rsplit(":", 1)[1])
    for policy in (
        AddressPolicy(private_hosts=frozenset({"127.0.0.1"})),
        AddressPolicy(frozenset({("127.0.0.1", port)})),
    ):
        with http.Client(transport=guarded_transport(http, core, policy)) as client:
            assert client.get(f"{listener.url}/x").json() == {"ok": True}
    assert len(listener.requests) == 2


def test_unresolvable_names_are_refused_for_connections_but_may_be_passed_on():
    policy = AddressPolicy()
    assert policy.refusal("no-such-host.invalid", 443) == "no-such-host.invalid does not resolve"
    assert policy.refusal("no-such-host.invalid", 443, unresolved_ok=True) is None


@pytest.mark.parametrize(("http", "core"), FLAVOURS, ids=["httpx", "httpx2"])
def test_a_trickling_answer_is_cut_at_the_deadline_not_at_the_read_timeout(http, core):
    answer = http_response(200, {"padding": "x" * 100})

    def respond(request, handler):
        server.trickle(handler, answer, 0.2)

    with RecordingServer(respond) as server:
        with http.Client(transport=guarded_transport(http, core, None), timeout=120) as client:
            started = time.monotonic()
            with deadline_after(1.5), pytest.raises(http.ReadTimeout):
                client.get(f"{server.url}/slow")
            assert 1.4 < time.monotonic() - started < 2.0
