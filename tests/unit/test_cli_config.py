"""The `swarm` entry point in-process: every flag of every verb has its SWARM_* twin, a twin is
read and refused like its flag, and refused values of the verbs that start nothing long-running
(create, list, up, down, ca) are one `swarm VERB: error:` line and exit status 2."""
from __future__ import annotations

import argparse

import pytest

from swarmd import cli
from swarmd.common.config import ConfigError, add_flag, describe, env_name, host_port, positive


def verb_parsers(parser: argparse.ArgumentParser, prog: str = "swarm"):
    """(prog, parser) for the top-level parser and every sub-command, nested ones included."""
    yield prog, parser
    # argparse has no public way to list sub-commands: read its actions
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from verb_parsers(sub, f"{prog} {name}")


def test_every_flag_of_every_verb_has_its_env_twin():
    parsers = dict(verb_parsers(cli.build_parser()))
    assert {"swarm manage", "swarm join", "swarm discovery", "swarm create", "swarm list", "swarm up",
            "swarm down", "swarm ca init", "swarm ca issue", "swarm ca digest"} <= set(parsers)
    missing = []
    for prog, parser in parsers.items():
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            flag = next(o for o in action.option_strings if o.startswith("--"))
            if f"[env {env_name(flag)}]" not in (action.help or ""):
                missing.append(f"{prog} {flag}")
    assert missing == []


def run_swarm(capsys, *argv: str) -> tuple[int, list[str]]:
    """Exit status and stderr lines of `swarm ARGV` run in this process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:      # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


def assert_refused(code: int, lines: list[str], verb: str, *, one_line: bool = True) -> None:
    assert code == 2, lines
    if one_line:
        assert len(lines) == 1, lines
    else:       # argparse prints its usage lines first
        assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), lines
    assert lines[-1].startswith(f"swarm {verb}: error: "), lines


@pytest.mark.parametrize("argv, one_line", [
    (("create", "--discovery-addr", "nohost"), True),
    (("create", "--discovery-addr", "127.0.0.1:70000"), True),
    (("create", "--discovery-addr", "127.0.0.1:4000", "--tlsverify", "--tlscacert", "/nonexistent/ca.pem"), True),
    (("create", "--discovery-addr", "127.0.0.1:4000", "--tls", "--tlscert", "/nonexistent/c.pem"), True),
    (("list", "token://not-a-token", "--discovery-addr", "127.0.0.1:4000"), True),
    (("list", "token://" + "a" * 32), True),                                # no --discovery-addr
    (("list", "--discovery-addr", "127.0.0.1:1,bad", "token://" + "a" * 32), True),
    (("list", "etcd://127.0.0.1:2379"), True),                              # no prefix
    (("list", "nodes://"), True),
    (("list", "nodes://10.0.0.[3:1]:4000"), True),
    (("list", "file://relative/path"), True),
    (("list", "file:///nonexistent/nodes.txt"), True),
    (("list", "gopher://x"), True),
    (("list", "--etcd-cacert", "/nonexistent/ca.pem", "etcd://127.0.0.1:2379/x"), True),
    (("list", "--etcd-cert", "/nonexistent/c.pem", "etcd://127.0.0.1:2379/x"), True),
    (("up", "--nodes", "0"), True),
    (("up", "--nodes", "7"), True),
    (("up", "--nodes", "many"), False),
    (("up", "--up-timeout", "soon"), False),
    (("up", "--up-timeout", "0"), True),
    (("ca", "issue", "--name", " "), True),
    (("ca", "issue", "--name", "n", "--host", ""), True),
    (("ca", "issue", "--name", "n", "--kind", "admin"), False),
])
def test_bad_values_of_short_verbs_are_refused_in_one_line(capsys, argv, one_line):
    code, lines = run_swarm(capsys, *argv)
    verb = " ".join(argv[:2]) if argv[0] == "ca" else argv[0]
    assert_refused(code, lines, verb, one_line=one_line)


@pytest.mark.parametrize("env, value, argv", [
    ("SWARM_DISCOVERY_ADDR", "nohost", ("create",)),
    ("SWARM_NODES", "many", ("up",)),
    ("SWARM_UP_TIMEOUT", "soon", ("up",)),
    ("SWARM_KIND", "admin", ("ca", "issue", "--name", "n")),
    ("SWARM_TLSCACERT", "/nonexistent/ca.pem", ("list", "--tlsverify", "nodes://127.0.0.1:4000")),
])
def test_a_bad_env_twin_is_refused_like_its_flag(capsys, monkeypatch, env, value, argv):
    monkeypatch.setenv(env, value)
    code, lines = run_swarm(capsys, *argv)
    verb = " ".join(argv[:2]) if argv[0] == "ca" else argv[0]
    assert_refused(code, lines, verb, one_line=len(lines) == 1)
    if len(lines) > 1:          # argparse's refusal names the twin the value came from
        assert f"{env}='{value}'" in lines[-1]


def test_a_bad_twin_of_another_verbs_flag_is_not_in_the_way(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SWARM_NODES", "many")          # a `swarm up` flag
    monkeypatch.setenv("SWARM_TTL", "forever")         # a `swarm join`/`swarm discovery` flag
    code, lines = run_swarm(capsys, "down", "--state-dir", str(tmp_path / "none"))
    assert code == 1 and lines[-1].startswith("swarm down: no dev cluster is up"), lines


def test_a_bad_global_flag_twin_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SWARM_LOG_LEVEL", "loud")
    code, lines = run_swarm(capsys, "down", "--state-dir", str(tmp_path))
    assert code == 2 and lines[-1].startswith("swarm: error: ") and "SWARM_LOG_LEVEL='loud'" in lines[-1]


def test_twin_gives_the_default_and_the_flag_wins(monkeypatch):
    monkeypatch.setenv("SWARM_HEARTBEAT", "500ms")
    monkeypatch.setenv("SWARM_STRATEGY", "binpack")
    parser = argparse.ArgumentParser()
    from swarmd.common.config import parse_duration
    add_flag(parser, "--heartbeat", type=parse_duration, default=2.0)
    add_flag(parser, "--strategy", default="spread", choices=["spread", "binpack"])
    args = parser.parse_args([])
    assert (args.heartbeat, args.strategy) == (0.5, "binpack")
    args = parser.parse_args(["--heartbeat", "3s", "--strategy", "spread"])
    assert (args.heartbeat, args.strategy) == (3.0, "spread")


@pytest.mark.parametrize("value, listen, expected", [
    ("127.0.0.1:4000", False, ("127.0.0.1", 4000)),
    ("[::1]:4000", False, ("::1", 4000)),
    ("node1:1", False, ("node1", 1)),
    (":9100", True, ("", 9100)),
    ("127.0.0.1:0", True, ("127.0.0.1", 0)),
])
def test_host_port_accepts(value, listen, expected):
    assert host_port("--x", value, listen=listen) == expected


@pytest.mark.parametrize("value, listen", [
    ("nohost", False), ("127.0.0.1:", False), ("127.0.0.1:65536", False), ("127.0.0.1:0", False),
    (":9100", False), ("::1:4000", False), ("[::1]4000", False), ("h:port", True),
])
def test_host_port_refuses_naming_the_flag(value, listen):
    with pytest.raises(ConfigError, match="^--x "):
        host_port("--x", value, listen=listen)


def test_positive_bounds():
    assert positive("--n", 0.0, zero=True) == 0.0
    for bad, zero in ((0.0, False), (-1.0, True), (float("nan"), True), (float("inf"), False)):
        with pytest.raises(ConfigError, match="^--n "):
            positive("--n", bad, zero=zero)


def test_describe_masks_secrets_of_a_configuration(tmp_path):
    from swarmd.common.cluster_access import ClusterAccess
    args = argparse.Namespace(discovery_url="token://" + "ab" * 16, discovery_addr="127.0.0.1:4000",
                              tls=False, tlsverify=False, etcd_cacert=None, etcd_cert=None, etcd_key=None)
    cluster = ClusterAccess.from_args(args)
    assert "ab" * 16 not in repr(cluster)
    logged = describe(cluster)
    assert "ab" * 16 not in str(logged) and logged["url"].startswith("token://abab…")


# -- classic swarm's command line -----------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(capsys, flag):
    assert cli.main([flag]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("swarm version ") and out[0].endswith(" (swarmd)")


@pytest.mark.parametrize("argv, words", [
    (("join", "--advertise", "127.0.0.1:4100"), "discovery required to join a cluster. See 'swarm join --help'."),
    (("join", "nodes://127.0.0.1:4100"), "missing mandatory --advertise flag"),
    (("join", "--advertise", "", "nodes://127.0.0.1:4100"), "missing mandatory --advertise flag"),
    (("join", "--advertise", "127.0.0.1ac:sh25", "nodes://127.0.0.1:4100"),
     "--advertise should be of the form ip:port or hostname:port"),
    (("list",), "discovery required to list a cluster. See 'swarm list --help'."),
    (("manage", "--cluster-opt", "swarm.nosuch=1", "nodes://127.0.0.1:4100"), "unknown option 'swarm.nosuch'"),
    (("manage", "--cluster-opt", "swarm.createretry=-1", "nodes://127.0.0.1:4100"), "swarm.createretry=-1"),
    (("manage", "--engine-refresh-min-interval", "0s", "nodes://127.0.0.1:4100"), "must be more than 0"),
    (("manage", "--engine-refresh-min-interval", "30s", "--engine-refresh-max-interval", "10s",
      "nodes://127.0.0.1:4100"), "must be at least --engine-refresh-min-interval"),
    (("manage", "--engine-failure-retry", "0", "nodes://127.0.0.1:4100"), "must be more than 0"),
])
def test_classic_arguments_are_refused_in_classic_words(capsys, argv, words):
    code, lines = run_swarm(capsys, *argv)
    assert_refused(code, lines, argv[0])
    assert words in lines[0]


def test_classic_manage_flags_and_discovery_twin_are_accepted(monkeypatch):
    from swarmd.manager.config import ManagerConfig
    monkeypatch.setenv("SWARM_DISCOVERY", "nodes://127.0.0.1:4100")
    args = cli.build_parser().parse_args(
        ["manage", "--engine-refresh-min-interval", "30s", "--engine-refresh-max-interval", "60s",
         "--engine-failure-retry", "3", "--heartbeat", "60s", "--cluster-opt", "swarm.overcommit=0.05",
         "--cluster-opt", "swarm.createretry=2", "nodes://127.0.0.1:4100"])
    cfg = ManagerConfig.from_args(args)
    assert cfg.classic_flags == ("--engine-refresh-min-interval", "--engine-refresh-max-interval",
                                 "--engine-failure-retry", "--heartbeat")
    assert (cfg.cluster_opts.overcommit, cfg.cluster_opts.create_retry) == (0.05, 2)
    list_args = cli.build_parser().parse_args(["list"])
    from swarmd.cli.list import configure
    assert configure(list_args).url == "nodes://127.0.0.1:4100"
