"""Constraint and affinity expressions: `KEY==VALUE`, `KEY!=VALUE`, soft `KEY==~VALUE`.

`KEY\\!=VALUE`, classic's documented shell-escaped form (`!` is special in interactive bash), is
`KEY!=VALUE`. VALUE is a plain string (matched exactly), a glob where `*` stands for any run of characters
(`node*`), or a regular expression between slashes (`/node[12]/`, searched, as classic swarm
did; write `(?i)` inside for a case-insensitive match).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from swarmd.manager.scheduler.errors import InvalidSpec

EQ = "=="
NE = "!="
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")


@dataclass(frozen=True)
class Expression:
    key: str          # lower-cased, as classic swarm did
    operator: str     # "==" or "!="
    value: str        # without the soft marker "~"
    soft: bool = False
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _kind: str = field(default="plain", compare=False, repr=False)   # "plain", "glob" or "regex"

    def __str__(self) -> str:
        return f"{self.key}{self.operator}{'~' if self.soft else ''}{self.value}"

    @property
    def is_plain(self) -> bool:
        """The value is an exact string (no glob, no regular expression)."""
        return self._kind == "plain"

    def matches_one(self, candidate: str) -> bool:
        """Whether `candidate` matches the value (ignoring the operator)."""
        if self._regex is None:
            return candidate == self.value
        if self._kind == "regex":
            return self._regex.search(candidate) is not None
        return self._regex.fullmatch(candidate) is not None

    def matches_any(self, candidates: Iterable[str]) -> bool:
        if self._regex is None:
            value = self.value
            return any(c == value for c in candidates)
        return any(self.matches_one(c) for c in candidates)

    def accepts(self, candidates: Iterable[str]) -> bool:
        """`==`: some candidate matches; `!=`: none does."""
        hit = self.matches_any(candidates)
        return hit if self.operator == EQ else not hit


def parse_expression(kind: str, text: str) -> Expression:
    """Parses one `constraint:`/`affinity:` expression; `kind` only words the error messages."""
    if not isinstance(text, str):
        raise InvalidSpec(f"invalid {kind} {text!r}: expected a string KEY==VALUE or KEY!=VALUE")
    return _parsed(kind, text)


# a create usually repeats expressions made before (`constraint:node==node1`, compose's affinities):
# an Expression is frozen, so one parse serves every create that repeats it
@functools.lru_cache(maxsize=1024)
def _parsed(kind: str, text: str) -> Expression:
    positions = [(text.find(op), op) for op in (EQ, NE) if op in text]
    if not positions:
        raise InvalidSpec(f'invalid {kind} "{text}": expected KEY==VALUE or KEY!=VALUE')
    at, op = min(positions)
    key, value = text[:at].strip(), text[at + len(op):].strip()
    if op == NE and key.endswith("\\"):
        key = key[:-1].rstrip()
    if not _KEY.fullmatch(key):
        raise InvalidSpec(f'invalid {kind} "{text}": key "{key}" must start with a letter or "_" and '
                          'hold only letters, digits, "_", ".", "-" or "/"')
    soft = value.startswith("~")
    if soft:
        value = value[1:].strip()
    if not value:
        raise InvalidSpec(f'invalid {kind} "{text}": expected a value after "{op}"')
    regex: re.Pattern[str] | None = None
    how = "plain"
    if len(value) >= 2 and value[0] == "/" and value[-1] == "/":
        how = "regex"
        try:
            regex = re.compile(value[1:-1])
        except re.error as exc:
            raise InvalidSpec(f'invalid {kind} "{text}": bad regular expression: {exc}') from None
    elif "*" in value:
        how = "glob"
        regex = re.compile(".*".join(re.escape(part) for part in value.split("*")), re.DOTALL)
    return Expression(key=key.lower(), operator=op, value=value, soft=soft, _regex=regex, _kind=how)


def parse_expressions(kind: str, texts: Iterable[str]) -> tuple[Expression, ...]:
    return tuple(parse_expression(kind, t) for t in texts)
