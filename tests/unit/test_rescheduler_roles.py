"""Leadership as the manager applies it: roles, stepping down without confirmation, primary-only work,
and the replica's router (local /info and /_ping, everything else forwarded)."""
from __future__ import annotations

import asyncio

from swarmd.manager.election import UNKNOWN, Roles, confirm_within, default_advertise, follow_leadership
from swarmd.manager.forwarding import RoleRouter, upstream_target
from swarmd.manager.httpd.request import Headers, Request
from swarmd.manager.httpd.router import Router
from swarmd.common.membership.etcd_election import LeaderState


class Ctx:
    role = "replica"
    primary_addr = ""


async def _feed(states, gap_after: int | None = None, hold: float = 0.0):
    for i, s in enumerate(states):
        yield s
        if gap_after is not None and i == gap_after:
            await asyncio.sleep(hold)


def test_changes_are_applied_and_repeated_confirmations_are_not():
    seen = []
    me = LeaderState("10.0.0.1:2375", True)
    other = LeaderState("10.0.0.2:2375", False)
    asyncio.run(follow_leadership(_feed([other, other, me, me, me, other]), 3.0, seen.append))
    assert seen == [other, me, other]


def test_an_unconfirmed_primary_steps_down_on_its_own():
    seen = []
    me = LeaderState("10.0.0.1:2375", True)

    async def main():
        task = asyncio.create_task(follow_leadership(_feed([me], gap_after=0, hold=60), 2.0, seen.append))
        for _ in range(200):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())
    assert seen == [me, UNKNOWN]
    assert confirm_within(3.0) < 3.0          # before etcd could hand the key to anyone else


def test_primary_work_runs_only_while_primary():
    ctx = Ctx()
    running = []

    async def work():
        running.append(True)
        try:
            await asyncio.sleep(3600)
        finally:
            running.pop()

    async def main():
        roles = Roles(ctx, work)
        roles.apply(LeaderState("a:1", True))
        await asyncio.sleep(0)
        assert ctx.role == "primary" and ctx.primary_addr == "a:1" and running == [True]
        roles.apply(LeaderState("a:1", True))
        await asyncio.sleep(0)
        assert running == [True]                  # not started twice
        roles.apply(LeaderState("b:2", False))
        await asyncio.sleep(0)
        assert ctx.role == "replica" and ctx.primary_addr == "b:2" and running == []
        roles.apply(LeaderState("a:1", True))
        await asyncio.sleep(0)
        await roles.close()
        assert running == []
    asyncio.run(main())


def test_replica_router_answers_info_and_ping_itself_and_forwards_the_rest():
    async def local(req):
        return "local"

    async def forward(req):
        return "forwarded"
    router = Router()
    for method, path in (("GET", "/info"), ("GET", "/_ping"), ("GET", "/containers/json")):
        router.add(method, path, local)
    ctx = Ctx()
    rr = RoleRouter(router, lambda: ctx.role == "primary", forward)
    assert rr.resolve("GET", "/info")[0] is local
    assert rr.resolve("GET", "/_ping")[0] is local
    assert rr.resolve("GET", "/containers/json")[0] is forward
    assert rr.resolve("POST", "/no/such/route")[0] is forward
    ctx.role = "primary"
    assert rr.resolve("GET", "/containers/json")[0] is local


def test_upstream_target_keeps_version_path_and_query():
    req = Request("GET", "/containers/node1/web/json", {"size": ["1"], "filters": ['{"a":["b c"]}']},
                  Headers([]), b"", "1.41")
    assert upstream_target(req) == "/v1.41/containers/node1/web/json?size=1&filters=%7B%22a%22%3A%5B%22b+c%22%5D%7D"


def test_default_advertise_is_the_one_specific_tcp_address():
    assert default_advertise(["tcp://10.0.0.5:2375"]) == "10.0.0.5:2375"
    assert default_advertise(["unix:///run/s.sock", "tcp://127.0.0.1:2375"]) == "127.0.0.1:2375"
    assert default_advertise(["tcp://0.0.0.0:2375"]) == ""
    assert default_advertise(["tcp://10.0.0.5:2375", "tcp://10.0.0.6:2375"]) == ""
