"""The fast JSON parser reads everything as the standard library does, and fails where it fails."""
from __future__ import annotations

import json
import math

import pytest

from swarmd.common import json_parse
from swarmd.common.json_parse import loads


@pytest.mark.parametrize("text", [
    b'{"Id":"ab","State":{"Running":true,"Pid":42},"Labels":{"a":"\\u00e9"},"N":null,"F":1.5}',
    '{"unicode":"\u00e9\u4e2d","list":[1,2,3]}'.encode(), b"[]", b"  {} ", "{\"s\": \"x\"}",
    b'{"dup":1,"dup":2}',                         # the last wins, as the standard library reads it
    b'{"u":18446744073709551615,"i":-9223372036854775808}',   # Go's uint64 and int64 ends
    b'{"x":NaN,"y":-Infinity}',                  # not JSON, but what json.loads accepts
    b'{"lone":"\\ud800"}',                       # a lone surrogate
])
def test_reads_as_the_standard_library(text):
    want, got = json.loads(text), loads(text)
    assert repr(got) == repr(want)
    if isinstance(want, dict) and "x" in want:
        assert math.isnan(got["x"])


@pytest.mark.parametrize("text", [b"", b"{", b'{"a":}', b"\xff\xfe", b"[1,]"])
def test_fails_where_the_standard_library_fails(text):
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        loads(text)


def test_integers_beyond_what_go_writes_are_the_one_difference():
    assert loads(b"18446744073709551616") == float(2 ** 64) and json.loads(b"18446744073709551616") == 2 ** 64


def test_dumps_writes_what_json_loads_reads_back_and_falls_back_to_the_standard_library():
    body = {"Image": "busybox", "Cmd": ["sh", "-c", "echo é"], "Labels": {"a": "b"}, "HostConfig": {"Memory": 0},
            "Big": 2**70, "Odd": "\ud800"}
    assert json.loads(json_parse.dumps(body)) == body          # beyond 64 bits and a lone surrogate included
    assert json_parse.dumps({"a": [1, None]}) == b'{"a":[1,null]}'
    assert json.loads(json_parse.dumps({"x": float("nan")})) == {"x": None}
