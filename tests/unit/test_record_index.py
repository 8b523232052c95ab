"""The index of records by a shared key, and ID-prefix lookups through the short-ID index."""
from __future__ import annotations

import pytest

from swarmd.manager.record_index import SharedKeyIndex


class Rec:
    def __init__(self, id: str):
        self.id = id


def test_one_holder_is_kept_as_itself_and_several_as_a_dict_until_one_is_left():
    index, a, b = SharedKeyIndex(), Rec("a" * 64), Rec("b" * 64)
    index.add("k", a)
    index.add("k", a)                      # the same container again: still one holder
    assert index.get("k") == (a,)
    index.add("k", b)
    assert set(index.get("k")) == {a, b}
    index.discard("k", a)
    assert index.get("k") == (b,)
    index.discard("k", b)
    assert index.get("k") == () and len(index) == 0


def test_a_newer_record_of_the_same_container_is_not_dropped_for_the_old_one():
    index, old, new = SharedKeyIndex(), Rec("c" * 64), Rec("c" * 64)
    index.add("k", old)
    index.add("k", new)                    # re-read: the same ID, a new record
    index.discard("k", old)
    assert index.get("k") == (new,)
