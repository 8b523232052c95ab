"""JSON parsing of what engines write, on the hot paths (inspect documents, event lines, container
lists): orjson, 2.5x faster than the standard library on an inspect document here, with the
standard library's result for anything orjson refuses (NaN, lone surrogates), so an engine's
output parses as `json.loads` parses it. One difference is left: an integer outside
[-2**63, 2**64) comes back as a float, and engines never write one (Go's integers are int64 or
uint64). Requests from clients keep the standard library."""
from __future__ import annotations

import json

import orjson


def loads(data: bytes | bytearray | memoryview | str):
    """`json.loads(data)`, faster; raises json.JSONDecodeError (a ValueError) as it does."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
