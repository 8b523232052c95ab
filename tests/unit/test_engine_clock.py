"""Engine-clock times travel from the agent's trailing metadata to the manager unchanged."""
from __future__ import annotations

from swarmd.common import engine_clock


def test_a_stamped_time_reads_back_under_its_own_key_only():
    metadata = engine_clock.trailing_metadata(engine_clock.DONE_AT, 1_700_000_000_123_456_789)
    assert engine_clock.time_from(metadata, engine_clock.DONE_AT) == 1_700_000_000_123_456_789
    assert engine_clock.time_from(metadata, engine_clock.READ_AT) == 0


def test_no_or_malformed_metadata_reads_as_zero():
    assert engine_clock.time_from(None, engine_clock.READ_AT) == 0
    assert engine_clock.time_from([(engine_clock.READ_AT, "soon")], engine_clock.READ_AT) == 0
    assert engine_clock.time_from([(engine_clock.READ_AT, b"12")], engine_clock.READ_AT) == 0
