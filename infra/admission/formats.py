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

_GO_DURATION = re.compile(r"^[-+]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+)$")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_LOOSE_PART = re.compile(r"([0-9]+)\s*([A-Za-zµ]+)")
_LOOSE_UNITS = (
    (("ns", "nano"), 1e-9),
    (("us", "µs", "micro"), 1e-6),
    (("ms", "milli"), 1e-3),
    (("s", "sec"), 1),
    (("m", "min"), 60),
    (("h", "hr", "hour"), 3600),
    (("d", "day"), 86400),
    (("w", "wk", "week"), 604800),
)
"""strfmt's timeUnits: a unit is one of a row's spellings, or starts with the row's last ("seconds", "hours")."""


def _loose_unit(unit: str) -> float | None:
    unit = unit.strip().lower()
    for spellings, seconds in _LOOSE_UNITS:
        if unit.startswith(spellings[-1]) or any(unit.casefold() == s.casefold() for s in spellings):
            return seconds
    return None


def parse_duration(text: str) -> datetime.timedelta:
    """kube-openapi's strfmt.ParseDuration (the apiserver's `format: duration`; pkg/validation/strfmt/duration.go at
    d427ff9, 2026-07-21): Go's time.ParseDuration ("1h30m", "-250ms", "0"), else the sum of every `<int> <unit>`
    it finds ("7 days", "2 weeks 1h"), units it does not know skipped, at least one known."""
    try:
        if _GO_DURATION.match(text):
            sign = -1 if text.startswith("-") else 1
            return datetime.timedelta(seconds=sign * sum(float(n) * _SECONDS[u] for n, u in _GO_PART.findall(text)))
        parts = [(int(n), _loose_unit(u)) for n, u in _LOOSE_PART.findall(text)]
        if all(seconds is None for _, seconds in parts):
            raise ValueError(f"not a duration: {text!r}")
        return datetime.timedelta(seconds=sum(n * seconds for n, seconds in parts if seconds is not None))
    except OverflowError as error:
        raise ValueError(f"duration out of range: {text!r}") from error


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
