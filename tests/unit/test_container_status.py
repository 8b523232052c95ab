from datetime import datetime, timedelta, timezone

import pytest

from swarmd.manager.container_status import human_duration, parse_time, status_text

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc)


def ago(**kw) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%S.000000001Z")


@pytest.mark.parametrize("seconds,text", [
    (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (5 * 60, "5 minutes"), (3600, "About an hour"), (5 * 3600, "5 hours"), (3 * 86400, "3 days"),
    (20 * 86400, "2 weeks"), (90 * 86400, "3 months"), (800 * 86400, "2 years"),
])
def test_human_duration_matches_go_units(seconds, text):
    assert human_duration(seconds) == text


def test_parse_time_handles_nanoseconds_and_zero_time():
    assert parse_time("2026-11-25T11:59:58.123456789Z") == datetime(2026, 11, 25, 11, 59, 58, 123456, tzinfo=timezone.utc)
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("") is None
    assert parse_time("garbage") is None


def test_status_texts():
    assert status_text({"Running": True, "StartedAt": ago(seconds=3)}, NOW) == "Up 3 seconds"
    assert status_text({"Running": True, "Paused": True, "StartedAt": ago(minutes=2)}, NOW) == "Up 2 minutes (Paused)"
    assert status_text({"Running": False, "ExitCode": 3, "StartedAt": ago(minutes=5), "FinishedAt": ago(minutes=4)},
                       NOW) == "Exited (3) 4 minutes ago"
    assert status_text({"Running": False, "StartedAt": "0001-01-01T00:00:00Z"}, NOW) == "Created"
    assert status_text({"Running": True, "StartedAt": ago(seconds=10), "Health": {"Status": "healthy"}},
                       NOW) == "Up 10 seconds (healthy)"
    assert status_text({"Status": "dead", "Dead": True, "StartedAt": ago(seconds=9)}, NOW) == "Dead"


def test_the_duration_bucket_determines_the_human_text():
    from swarmd.manager.container_status import duration_bucket
    seconds = [x / 2 for x in range(-10, 2 * 3 * 3600)] + list(range(3 * 3600, 3 * 365 * 86400, 97))
    texts: dict[int, str] = {}
    for s in seconds:
        assert texts.setdefault(duration_bucket(s), human_duration(s)) == human_duration(s), s
    assert len(texts) < 300          # a long list computes at most a few hundred texts


def test_plainly_running_is_up_and_nothing_more():
    from swarmd.manager.container_status import plainly_running, status_at, up_for
    started = NOW - timedelta(minutes=7)
    for state in ({"Running": True}, {"Running": True, "Health": {"Status": "none"}}):
        assert plainly_running(state) and up_for(started, NOW) == status_at(state, started, None, NOW) == "Up 7 minutes"
    for state in ({"Running": True, "Paused": True}, {"Running": True, "Restarting": True},
                  {"Running": True, "Health": {"Status": "healthy"}}, {"Running": False}):
        assert not plainly_running(state)
