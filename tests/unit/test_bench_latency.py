"""The latency suite's arithmetic: added milliseconds are medians of paired differences, ratios of
medians; `ps` must stay below the engine; stage rows come back from the daemons' log lines."""
from __future__ import annotations

from bench.latency import per_call_rows, rows_of, stage_rows


def _times(manager: list[float], engine: list[float]) -> dict[str, list[float]]:
    return {"manager": manager, "engine": engine}


def test_added_milliseconds_are_the_median_of_paired_differences():
    times = {"create": _times([0.030, 0.041, 0.022], [0.029, 0.040, 0.020]),   # +1, +1, +2 ms
             "start": _times([0.2, 0.2, 0.2], [0.197, 0.198, 0.199]),            # +3, +2, +1 ms
             "run -d": _times([1.0, 1.0], [1.0, 1.0]),
             "inspect": _times([0.0012], [0.001]),
             "ps": _times([0.001], [0.001])}
    rows = {r.name: r for r in rows_of(times, "x")}
    create = rows["x: create added by the manager (median of pairs)"]
    assert abs(create.value - 1.0) < 1e-6 and create.target == "<= 1.5" and create.pass_
    start = rows["x: start added by the manager (median of pairs)"]
    assert abs(start.value - 2.0) < 1e-6 and start.pass_ is False
    assert rows["x: run -d median ratio manager/engine"].pass_
    inspect = rows["x: inspect median ratio manager/engine"]
    assert abs(inspect.value - 1.2) < 1e-6 and inspect.pass_ is False
    ps = rows["x: ps median ratio manager/engine"]
    assert ps.target == "< 1" and ps.pass_ is False          # as fast as the engine is not faster


def test_stage_rows_read_the_daemons_log_lines(tmp_path):
    log = tmp_path / "manager0.log"
    log.write_text(
        "2026-01-01T00:00:00.000Z info manager.placement stage times what=place decide=100us rpc=900us\n"
        "2026-01-01T00:00:00.001Z info manager.placement stage times what=place decide=300us rpc=1100us\n"
        "2026-01-01T00:00:00.002Z info manager.api.containers container created id=abc\n")
    rows = {r.name: r.value for r in stage_rows([log, tmp_path / "absent.log"], "p")}
    assert rows == {"p: stage place decide median": 0.2, "p: stage place rpc median": 1.0}


def test_each_direction_of_the_create_call_comes_from_both_daemons_clocks(tmp_path):
    # the manager called the agent 100 us after its clock began (decide), and held the answer 1,500 us
    # later; the agent's handler began 400 us after the call and the engine answered 900 us after that
    manager, agent = tmp_path / "manager0.log", tmp_path / "agent.log"
    manager.write_text(
        "t info manager.placement stage times what=place decide=100us rpc_create=1500us began=1000000\n"
        "t info manager.placement stage times what=place decide=100us rpc_create=1700us began=9000000\n")
    agent.write_text(
        "t info agent.service stage times what=agent-create engine_create=900us answer_sent=50us "
        "read_back=300us began=1500000\n"
        "t info agent.service stage times what=agent-create engine_create=900us answer_sent=50us "
        "read_back=300us began=9300000\n")
    rows = {r.name: r.value for r in per_call_rows(manager, agent, "p")}
    # request one-way: 400 us and 200 us; answer one-way: 1,100 - 900 - 400 = 200 us, 1,300 - 200 - 900 = 600 us
    assert abs(rows["p: create: gRPC request one-way, manager's call to agent's handler (median)"] - 0.3) < 1e-9
    assert abs(rows["p: create: gRPC answer one-way, engine's answer to the manager holding it (median)"] - 0.4) < 1e-9


def test_the_one_way_rows_need_every_line_paired_and_stamped(tmp_path):
    manager, agent = tmp_path / "manager0.log", tmp_path / "agent.log"
    manager.write_text("t info m stage times what=place decide=100us rpc_create=1500us\n")
    agent.write_text("t info a stage times what=agent-create engine_create=900us began=1500000\n")
    names = [r.name for r in per_call_rows(manager, agent, "p")]
    assert not any("one-way" in n for n in names)
