"""The human `Status` column of `docker ps`, computed from a container's state at list time.

The manager keeps container records between events, so the engine's own `Status` string (for
example "Up 5 seconds") would go stale; this recomputes it as the engine does.
"""
from __future__ import annotations

import functools
from datetime import datetime, timezone


# pure; records parse their times once (manager.container_records), so a small cache serves the
# rest (a cache as large as the fleet held ~0.5 KiB per container)
@functools.lru_cache(maxsize=4096)
def parse_time(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    t = text.rstrip("Z")
    if "." in t:
        head, frac = t.split(".", 1)
        frac = "".join(ch for ch in frac if ch.isdigit())[:6]
        t = f"{head}.{frac}"
    try:
        return datetime.fromisoformat(t).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as the engine uses it."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def duration_bucket(seconds: float) -> int:
    """A number that determines human_duration(seconds), counting what its text counts (seconds,
    minutes, hours, days, weeks, months, years): a listing computes each distinct text once, and
    thousands of containers up for "5 hours" share it."""
    s = int(seconds)
    if s < 60:
        return max(s, 0)
    if s < 3600:
        return 60 + s // 60
    hours = round(s / 3600)
    if hours < 48:
        return 200 + hours
    days = hours // 24
    if hours < 24 * 7 * 2:
        return 300 + days
    if hours < 24 * 30 * 2:
        return 400 + days // 7
    if hours < 24 * 365 * 2:
        return 500 + days // 30
    return 600 + days // 365


def status_text(state: dict, now: datetime | None = None) -> str:
    """`State` of an inspect document -> "Up 3 seconds", "Exited (0) 2 minutes ago", "Created"…"""
    return status_at(state, parse_time(state.get("StartedAt")), parse_time(state.get("FinishedAt")), now)


def plainly_running(state) -> bool:
    """Whether the state's Status column is "Up <uptime>" and nothing more (running, neither paused
    nor restarting, no health check): most entries of a long list, whose states are shared."""
    return bool(state.get("Running")) and not state.get("Paused") and not state.get("Restarting") \
        and (state.get("Health") or {}).get("Status") in (None, "none")


def up_for(started: datetime | None, now: datetime) -> str:
    """The Status column of a plainly running container started at `started`."""
    return "Up " + (human_duration((now - started).total_seconds()) if started else "Less than a second")


def status_at(state, started: datetime | None, finished: datetime | None, now: datetime | None = None) -> str:
    """`status_text` of a state whose `StartedAt` and `FinishedAt` are already parsed."""
    now = now or datetime.now(timezone.utc)
    health = (state.get("Health") or {}).get("Status")
    if state.get("Running"):
        up = human_duration((now - started).total_seconds()) if started else "Less than a second"
        if state.get("Paused"):
            return f"Up {up} (Paused)"
        if state.get("Restarting"):
            ago = human_duration((now - finished).total_seconds()) if finished else "Less than a second"
            return f"Restarting ({state.get('ExitCode', 0)}) {ago} ago"
        if health and health != "none":
            return f"Up {up} ({'health: starting' if health == 'starting' else health})"
        return f"Up {up}"
    if state.get("Status") == "removing":
        return "Removal In Progress"
    if state.get("Dead") or state.get("Status") == "dead":
        return "Dead"
    if not started:
        return "Created"
    if finished:
        return f"Exited ({state.get('ExitCode', 0)}) {human_duration((now - finished).total_seconds())} ago"
    return ""
