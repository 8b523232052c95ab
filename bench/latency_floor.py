"""The floor under the manager's added time: what one hop costs on this machine, with nothing of
swarmd in it.

A create through the manager costs, on top of the engine's own work, one HTTP round trip to the
manager and one gRPC round trip to the agent. This measures both hops bare, between two
processes on loopback, interleaved, so the latency rows can be read against them: a grpc.aio
unary echo (2 KB each way, one channel, as the manager's AgentClient calls its agent) and, for
scale, an asyncio TCP echo of the same bytes (what any Python hop costs at the least).

Those echoes run back to back, hot. A create meets both hops differently: the client has been
idle, and the agent's answer comes after the engine's ~12 ms of work, so every thread on the way
has gone to sleep. The `as a create meets it` rows time that pattern: after a 50 ms pause, a
server-streamed gRPC call (as CreateContainerStreamed) whose handler waits 12 ms before its first
message, the same as one message each way on a bidirectional stream kept open (as the Changes
stream), and the same over bare asyncio TCP; the server stamps when the request reached it and
when it answered (time.perf_counter_ns is CLOCK_MONOTONIC, one clock for both processes), so each
direction is timed on its own. One TCP hop plus one open-stream gRPC hop, both ways, is the floor
under the manager's added time per create on this machine.

    python -m bench.latency_floor            # prints the rows
"""
from __future__ import annotations

import asyncio
import os
import statistics
import struct
import subprocess
import sys
import time

import grpc
from grpc import aio

from bench.report import Row, judged

PAYLOAD = b"x" * 2048
WARMUP = 50
METHOD = "/swarmd.bench.Floor/Echo"
STREAMED = "/swarmd.bench.Floor/Streamed"
CHANGES = "/swarmd.bench.Floor/Changes"
ENGINE_WORK = 0.012      # what an engine's create takes, about
IDLE_GAP = 0.05          # between one create and the next, about, at the least
_STAMPS = struct.Struct("qq")     # when the call reached the server, when it answered


async def _echo(request: bytes, context) -> bytes:
    return request


async def _streamed(request: bytes, context):
    """Two messages, as a streamed change: the first (stamped) after the engine's work, then one more."""
    reached = time.perf_counter_ns()
    await asyncio.sleep(ENGINE_WORK)
    yield _STAMPS.pack(reached, time.perf_counter_ns()) + request[_STAMPS.size:]
    yield request


async def _changes(requests, context):
    """One stamped answer and one more message per request, on one open stream (as Changes)."""
    async for request in requests:
        reached = time.perf_counter_ns()
        await asyncio.sleep(ENGINE_WORK)
        yield _STAMPS.pack(reached, time.perf_counter_ns()) + request[_STAMPS.size:]
        yield request


async def _tcp_stamped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each PAYLOAD-sized request after the engine's work, stamped as `_streamed`."""
    while True:
        try:
            data = await reader.readexactly(len(PAYLOAD))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        reached = time.perf_counter_ns()
        await asyncio.sleep(ENGINE_WORK)
        writer.write(_STAMPS.pack(reached, time.perf_counter_ns()) + data[_STAMPS.size:])


async def _serve() -> None:
    server = aio.server()
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(_echo),
                "Streamed": grpc.unary_stream_rpc_method_handler(_streamed),
                "Changes": grpc.stream_stream_rpc_method_handler(_changes)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("swarmd.bench.Floor", handlers),))
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    async def tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
    tcp = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
    stamped = await asyncio.start_server(_tcp_stamped, "127.0.0.1", 0)
    print(grpc_port, tcp.sockets[0].getsockname()[1], stamped.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)   # until the parent closes it


async def _measure(grpc_port: int, tcp_port: int, calls: int) -> dict[str, list[float]]:
    channel = aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    echo = channel.unary_unary(METHOD)
    reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)

    async def tcp_round_trip() -> None:
        writer.write(PAYLOAD)
        got = 0
        while got < len(PAYLOAD):
            got += len(await reader.read(65536))

    times: dict[str, list[float]] = {"grpc": [], "tcp": []}
    for i in range(WARMUP + calls):
        for name, call in (("grpc", lambda: echo(PAYLOAD)), ("tcp", tcp_round_trip)):
            started = time.perf_counter()
            await call()
            if i >= WARMUP:
                times[name].append((time.perf_counter() - started) * 1e3)
    writer.close()
    await channel.close()
    return times


async def _measure_as_a_create(grpc_port: int, stamped_port: int, calls: int) -> dict[str, list[float]]:
    """One-way times (ms) of both hops in the pattern a create meets: idle before, a wait between."""
    channel = aio.insecure_channel(f"127.0.0.1:{grpc_port}")
    streamed = channel.unary_stream(STREAMED)
    changes = channel.stream_stream(CHANGES)()
    reader, writer = await asyncio.open_connection("127.0.0.1", stamped_port)

    async def grpc_call() -> tuple[int, bytes]:
        call = streamed(PAYLOAD)
        first = await call.read()
        got = time.perf_counter_ns()
        while await call.read() is not aio.EOF:
            pass
        return got, first

    async def stream_message() -> tuple[int, bytes]:
        await changes.write(PAYLOAD)
        first = await changes.read()
        got = time.perf_counter_ns()
        await changes.read()
        return got, first

    async def tcp_call() -> tuple[int, bytes]:
        writer.write(PAYLOAD)
        data = await reader.readexactly(len(PAYLOAD))
        return time.perf_counter_ns(), data

    hops = (("grpc", grpc_call), ("stream", stream_message), ("tcp", tcp_call))
    times: dict[str, list[float]] = {f"{hop} {way}": [] for hop, _ in hops for way in ("request", "answer")}
    for i in range(WARMUP // 5 + calls):
        for hop, call in hops:
            await asyncio.sleep(IDLE_GAP)
            sent = time.perf_counter_ns()
            got, first = await call()
            reached, answered = _STAMPS.unpack(first[:_STAMPS.size])
            if i >= WARMUP // 5:
                times[f"{hop} request"].append((reached - sent) / 1e6)
                times[f"{hop} answer"].append((got - answered) / 1e6)
    writer.close()
    await changes.done_writing()
    await channel.close()
    return times


_HOPS = {"grpc": "bare gRPC, a new streamed call", "stream": "bare gRPC, one message on an open stream",
         "tcp": "bare asyncio TCP"}


def run(calls: int = 1000, create_calls: int = 60) -> list[Row]:
    server = subprocess.Popen([sys.executable, "-m", "bench.latency_floor", "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        grpc_port, tcp_port, stamped_port = map(int, server.stdout.readline().split())
        times = asyncio.run(_measure(grpc_port, tcp_port, calls))
        as_a_create = asyncio.run(_measure_as_a_create(grpc_port, stamped_port, create_calls))
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    one_way = {key: statistics.median(v) for key, v in as_a_create.items()}
    return [
        judged("latency floor: bare gRPC (grpc.aio) unary round trip between two processes, 2 KB (median)",
               statistics.median(times["grpc"]), "ms"),
        judged("latency floor: bare asyncio TCP round trip between two processes, 2 KB (median)",
               statistics.median(times["tcp"]), "ms"),
        *(judged(f"latency floor, as a create meets it: {_HOPS[hop]}, {way} one-way (median)",
                 one_way[f"{hop} {way}"], "ms")
          for hop in _HOPS for way in ("request", "answer")),
        judged("latency floor, as a create meets it: one TCP hop + one open-stream gRPC hop, both ways "
               "(the least the manager can add to a create here)",
               sum(v for key, v in one_way.items() if not key.startswith("grpc ")), "ms"),
    ]


if __name__ == "__main__":
    if "--serve" in sys.argv:
        asyncio.run(_serve())
    else:
        from bench.report import print_table
        print_table(run())
