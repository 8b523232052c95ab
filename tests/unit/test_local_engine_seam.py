"""Both engines the agent can drive (the SDK one and the hollow one) implement the `LocalEngine`
Protocol member for member: names, async-ness and full signatures, compared with `inspect`."""
from __future__ import annotations

import collections.abc
import inspect
import typing

import pytest

from swarmd.agent.hollow import HollowEngine
from swarmd.agent.local_engine import CONTAINER_ACTIONS, LocalEngine
from swarmd.agent.sdk_engine import SdkEngine
from swarmd.proto.swarm.v1 import agent_pb2

ENGINE_CLASSES = [SdkEngine, HollowEngine]


def _protocol_methods() -> dict[str, typing.Callable]:
    return {name: fn for name, fn in vars(LocalEngine).items()
            if inspect.isfunction(fn) and not name.startswith("_")}


def _how_called(fn) -> str:
    """How a caller uses the method: awaits it, iterates it with `async for`, or calls it plainly."""
    if inspect.isasyncgenfunction(fn):
        return "async for"
    if inspect.iscoroutinefunction(fn):
        return "await"
    returns = inspect.signature(fn, eval_str=True).return_annotation
    if typing.get_origin(returns) is collections.abc.AsyncIterator:
        return "async for"
    return "call"


def _make(engine_class):
    if engine_class is SdkEngine:
        return SdkEngine("unix:///nonexistent/docker.sock")      # builds its SDK client, connects to nothing
    return HollowEngine("seam")


def test_the_protocol_declares_what_the_agent_calls():
    assert set(_protocol_methods()) == {
        "check", "info", "version", "list_containers", "container_ids", "inspect_container", "inspect_containers",
        "create_container",
        "container_action", "pull_image", "request", "open", "events"}
    assert set(typing.get_type_hints(LocalEngine)) == {"url", "same_clock"}


@pytest.mark.parametrize("engine_class", ENGINE_CLASSES, ids=lambda c: c.__name__)
def test_engine_methods_match_the_protocol(engine_class):
    for name, declared in _protocol_methods().items():
        implemented = getattr(engine_class, name, None)
        assert implemented is not None, f"{engine_class.__name__} has no {name}"
        assert _how_called(implemented) == _how_called(declared), f"{engine_class.__name__}.{name}"
        want = inspect.signature(declared, eval_str=True)
        have = inspect.signature(implemented, eval_str=True)
        assert have == want, f"{engine_class.__name__}.{name}{have} differs from LocalEngine.{name}{want}"


@pytest.mark.parametrize("engine_class", ENGINE_CLASSES, ids=lambda c: c.__name__)
def test_engine_attributes_match_the_protocol(engine_class):
    engine = _make(engine_class)
    try:
        for name, declared_type in typing.get_type_hints(LocalEngine).items():
            assert isinstance(getattr(engine, name), declared_type), f"{engine_class.__name__}.{name}"
        assert isinstance(engine, LocalEngine)
    finally:
        if isinstance(engine, SdkEngine):
            engine.close()


def test_every_container_action_has_its_rpc_enum_value():
    enum_names = set(agent_pb2.ContainerActionRequest.Action.keys()) - {"ACTION_UNSPECIFIED"}
    assert enum_names == {f"ACTION_{name.upper()}" for name in CONTAINER_ACTIONS}
