"""The README's API coverage table agrees with what the manager's router serves."""
from __future__ import annotations

import re
from pathlib import Path

from swarmd.manager.api.coverage import classify, markdown, spec_endpoints

README = Path(__file__).parents[2] / "README.md"
_ROW = re.compile(r"^\| (GET|POST|PUT|DELETE|HEAD) \| `([^`]+)` \|")


def _readme_table() -> str:
    text = README.read_text()
    return text.split("<!-- api-coverage:start -->\n", 1)[1].split("<!-- api-coverage:end -->", 1)[0]


def test_readme_table_is_current():
    table = _readme_table()
    endpoints = [m.groups() for m in map(_ROW.match, table.splitlines()) if m]
    assert len(endpoints) >= 100
    assert markdown(classify(endpoints)) == table


def test_classification_of_known_endpoints():
    rows = {(m, p): s for m, p, s, _ in classify([
        ("POST", "/containers/create"), ("GET", "/services"), ("POST", "/images/create"), ("GET", "/nowhere")])}
    assert rows == {("POST", "/containers/create"): "supported", ("GET", "/services"): "unsupported",
                    ("POST", "/images/create"): "partial", ("GET", "/nowhere"): "unsupported"}


def test_spec_paths_are_read_with_their_methods():
    spec = "paths:\n  /containers/json:\n    get:\n      summary: x\n  /_ping:\n    get:\n    head:\n"
    assert spec_endpoints(spec) == [("GET", "/containers/json"), ("GET", "/_ping"), ("HEAD", "/_ping")]
