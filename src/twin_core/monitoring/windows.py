"""The window a drift check covers: ``[end - length, end)`` in UTC, and its artifact key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from twin_core.errors import InputError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW_DAYS = 366  # a year (and its reference window before it) of requests is the most one check reads


def parse_duration(text: str, *, option: str = "window") -> timedelta:
    """``30m``, ``1h``, ``2d`` -> timedelta (at least one minute, at most ``MAX_WINDOW_DAYS`` days); a wrong one
    is an InputError naming ``option`` (where the length came from: ``--window``, a variable...)."""
    match = _DURATION.match(text or "")
    if not match:
        raise InputError(f"{option} {text!r}: expected a number and a unit s/m/h/d, like 1h or 30m")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 60:
        raise InputError(f"{option} {text!r}: at least 1m")
    if seconds > MAX_WINDOW_DAYS * 86400:
        raise InputError(f"{option} {text!r}: at most {MAX_WINDOW_DAYS}d")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m", "s"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"  # pragma: no cover


def parse_time(text: str | None, *, now: datetime | None = None, option: str | None = None) -> datetime:
    """An ISO 8601 time (naive = UTC; a trailing Z is accepted), or now (to the minute) when None.

    ``option`` (e.g. ``--end``) names where the text came from in the error; None names nothing rather
    than a wrong option."""
    if text is None or not str(text).strip():
        now = now or datetime.now(UTC)
        return now.replace(second=0, microsecond=0)
    raw = str(text).strip().replace(" ", "T")
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        where = f"{option} " if option else ""
        raise InputError(f"{where}{text!r}: not an ISO 8601 time (like 2026-11-22T17:00:00Z)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    @property
    def label(self) -> str:
        return format_duration(self.length)

    @property
    def key(self) -> str:
        """Artifact folder name: ``20261122T170000Z-1h`` (the start, then the length)."""
        return f"{self.start:%Y%m%dT%H%M%SZ}-{self.label}"

    def previous(self, count: int = 1) -> Window:
        """The ``count`` windows right before this one, as one window."""
        try:
            return Window(self.start - count * self.length, self.start)
        except OverflowError:
            raise InputError(f"the {count} window(s) before {self.start.isoformat()} start before the year 1") from None

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "length": self.label, "key": self.key}


def parse_window(length: str, end: str | datetime | None = None, *, now: datetime | None = None) -> Window:
    end_dt = end.astimezone(UTC) if isinstance(end, datetime) else parse_time(end, now=now, option="--end")
    delta = parse_duration(length)
    try:
        return Window(end_dt - delta, end_dt)
    except OverflowError:
        raise InputError(f"window {length!r} before --end {end_dt.isoformat()} starts before the year 1") from None
