"""The floor under the manager's added time: what one hop costs on this machine, with nothing of
swarmd in it.

A create through the manager costs, on top of the engine's own work, one HTTP round trip to the
manager and one gRPC round trip to the agent. This measures both hops bare, between two
processes on loopback, interleaved, so the latency rows can be read against them: a grpc.aio
unary echo (2 KB each way, one channel, as the manager's AgentClient calls its agent) and, for
scale, an asyncio TCP echo of the same bytes (what any Python hop costs at the least).

    python -m bench.latency_floor            # prints the rows
"""
from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time

import grpc
from grpc import aio

from bench.report import Row, judged

PAYLOAD = b"x" * 2048
WARMUP = 50
METHOD = "/swarmd.bench.Floor/Echo"


async def _echo(request: bytes, context) -> bytes:
    return request


async def _serve() -> None:
    server = aio.server()
    handler = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("swarmd.bench.Floor", {"Echo": handler}),))
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    async def tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
    tcp = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
    print(grpc_port, tcp.sockets[0].getsockname()[1], flush=True)
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


def run(calls: int = 1000) -> list[Row]:
    server = subprocess.Popen([sys.executable, "-m", "bench.latency_floor", "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        grpc_port, tcp_port = map(int, server.stdout.readline().split())
        times = asyncio.run(_measure(grpc_port, tcp_port, calls))
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return [
        judged("latency floor: bare gRPC (grpc.aio) unary round trip between two processes, 2 KB (median)",
               statistics.median(times["grpc"]), "ms"),
        judged("latency floor: bare asyncio TCP round trip between two processes, 2 KB (median)",
               statistics.median(times["tcp"]), "ms"),
    ]


if __name__ == "__main__":
    if "--serve" in sys.argv:
        asyncio.run(_serve())
    else:
        from bench.report import print_table
        print_table(run())
