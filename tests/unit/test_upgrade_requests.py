"""Which requests ask to take the connection over (attach, exec start), as the relay to an agent and
the replica's forwarding to the primary both decide it: one predicate, either header enough."""
from __future__ import annotations

from swarmd.manager import forwarding
from swarmd.manager.api import relay
from swarmd.manager.api.relay import wants_hijack
from swarmd.manager.forwarding import upstream_headers
from swarmd.manager.httpd.request import Headers, Request


def _request(*headers: tuple[str, str]) -> Request:
    return Request("POST", "/containers/web/attach", {"stream": ["1"]}, Headers(list(headers)), b"", "1.41",
                   {"id": "web"})


def test_the_docker_cli_sends_both_headers_and_asks_to_upgrade():
    assert wants_hijack(_request(("Connection", "Upgrade"), ("Upgrade", "tcp")))


def test_connection_upgrade_alone_asks_to_upgrade():
    assert wants_hijack(_request(("Connection", "Upgrade")))
    assert wants_hijack(_request(("Connection", "keep-alive, Upgrade")))


def test_an_upgrade_header_alone_asks_to_upgrade():
    assert wants_hijack(_request(("Upgrade", "tcp")))


def test_plain_requests_do_not_ask_to_upgrade():
    assert not wants_hijack(_request())
    assert not wants_hijack(_request(("Connection", "keep-alive")))
    assert not wants_hijack(_request(("Connection", "close"), ("Upgrade", "")))


def test_forwarding_asks_the_relay_s_question():
    assert forwarding.wants_hijack is relay.wants_hijack


def test_a_replica_forwards_a_one_header_upgrade_with_both_headers():
    for only in (("Connection", "Upgrade"), ("Upgrade", "tcp")):
        req = _request(only)
        sent = upstream_headers(req, "10.0.0.1:2375", wants_hijack(req))
        assert ("Connection", "Upgrade") in sent and ("Upgrade", "tcp") in sent
        assert ("Connection", "close") not in sent


def test_the_agent_asks_the_same_question_of_its_engine_requests():
    from swarmd.agent import engine, service
    from swarmd.common.http_upgrade import asks_for_upgrade
    assert engine.asks_for_upgrade is asks_for_upgrade and service.asks_for_upgrade is asks_for_upgrade
    assert asks_for_upgrade([("Upgrade", "tcp")]) and asks_for_upgrade([("connection", "Upgrade")])
    assert not asks_for_upgrade([("Connection", "keep-alive"), ("Upgrade", "")])
