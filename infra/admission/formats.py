"""The OpenAPI string `format`s an API server checks, as far as they are cheap to check, and the parsers
for the three whose values CEL sees typed (duration, date-time/date, byte)."""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import re
import uuid
from collections.abc import Callable

_GO_DURATION = re.compile(r"^[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_LOOSE_PART = re.compile(r"(\d+)\s*([A-Za-zµ]+)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_LOOSE_UNITS = {
    **{u: 1e-9 for u in ("ns", "nano", "nanos")},
    **{u: 1e-6 for u in ("us", "µs", "micro", "micros")},
    **{u: 1e-3 for u in ("ms", "milli", "millis")},
    **{u: 1 for u in ("s", "sec", "secs", "second", "seconds")},
    **{u: 60 for u in ("m", "min", "mins", "minute", "minutes")},
    **{u: 3600 for u in ("h", "hr", "hrs", "hour", "hours")},
    **{u: 86400 for u in ("d", "day", "days")},
    **{u: 604800 for u in ("w", "wk", "week", "weeks")},
}


def parse_duration(text: str) -> datetime.timedelta:
    """go-openapi's strfmt.ParseDuration (the apiserver's `format: duration`): Go's time.ParseDuration
    ("1h30m", "250ms"), else a sum of `<int> <unit>` parts that also knows days and weeks ("7d")."""
    if text == "0" or _GO_DURATION.match(text):
        sign = -1 if text.startswith("-") else 1
        return datetime.timedelta(seconds=sign * sum(float(n) * _SECONDS[u] for n, u in _GO_PART.findall(text)))
    parts = [(int(n), u.strip().lower()) for n, u in _LOOSE_PART.findall(text)]
    if not parts or any(u not in _LOOSE_UNITS for _, u in parts):
        raise ValueError(f"not a duration: {text!r}")
    return datetime.timedelta(seconds=sum(n * _LOOSE_UNITS[u] for n, u in parts))


def parse_date_time(text: str) -> datetime.datetime:
    """RFC 3339 date-time, as strfmt accepts it (a `T` or a space, `Z` or an offset)."""
    value = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError(f"date-time without a time zone: {text!r}")
    return value


def parse_date(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=datetime.UTC)


def parse_byte(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ValueError(f"not base64: {error}") from error


def _ipv4(text: str) -> object:
    return ipaddress.IPv4Address(text)


def _ipv6(text: str) -> object:
    return ipaddress.IPv6Address(text)


def _cidr(text: str) -> object:
    return ipaddress.ip_network(text, strict=False)


def _uuid(text: str) -> object:
    if len(text) != 36:
        raise ValueError(text)
    return uuid.UUID(text)


CHECKS: dict[str, Callable[[str], object]] = {
    "duration": parse_duration,
    "date-time": parse_date_time,
    "datetime": parse_date_time,
    "date": parse_date,
    "byte": parse_byte,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "cidr": _cidr,
    "uuid": _uuid,
}
"""Each raises ValueError on a bad value. Other formats (int32, int64, ...) an API server does not check on strings."""
