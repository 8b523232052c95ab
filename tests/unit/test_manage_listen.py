import pytest

from swarmd.manager.config import ConfigError, check_listen


def test_loopback_and_unix_are_allowed():
    assert check_listen(["tcp://127.0.0.1:2375", "unix:///run/x.sock", "localhost:1"], False) == [
        "tcp://127.0.0.1:2375", "unix:///run/x.sock", "tcp://localhost:1"]


def test_plain_tcp_beyond_loopback_needs_explicit_consent():
    with pytest.raises(ConfigError, match="without TLS"):
        check_listen(["tcp://0.0.0.0:2375"], False)
    assert check_listen(["tcp://0.0.0.0:2375"], True) == ["tcp://0.0.0.0:2375"]


def test_malformed_addresses_are_rejected():
    for bad in ("tcp://:2375", "http://127.0.0.1:1", "tcp://127.0.0.1"):
        with pytest.raises(ConfigError):
            check_listen([bad], True)
