"""The Kubernetes CEL library functions that the shipped CRD rules use and celpy lacks.

celpy has the CEL standard library (`size`, `matches` on RE2, `startsWith`, `duration`, the macros
`has`/`all`/`exists`/`exists_one`/`filter`, `dyn`). Kubernetes adds more
(https://kubernetes.io/docs/reference/using-api/cel/); of those, the rules in the upstream schemas call
only `split` (strings extension), `isURL` (URL library) and, in `messageExpression`s, `format`. Each is
ported from its Go definition so that a rule means here what it means in an API server.

One standard-library gap shows too: CEL's equality is heterogeneous (`'metrics' != 0` is true, `1 == 1.0`
is true), which `int-or-string` rules such as PodMonitoring's `self != 0` rely on; celpy raises instead.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from celpy import celtypes
from celpy.evaluation import CELEvalError

# ------------------------------------------------------------------------------------------ split


def split(text: celtypes.StringType, separator: celtypes.StringType, limit: celtypes.IntType | None = None) -> celtypes.ListType:
    """`s.split(sep)` / `s.split(sep, n)`: Go's strings.SplitN (n < 0: all, 0: none, n > 0: at most n parts)."""
    n = -1 if limit is None else int(limit)
    if n == 0:
        parts: list[str] = []
    elif separator == "":
        chars = list(str(text))
        parts = chars if n < 0 or n >= len(chars) else [*chars[: n - 1], "".join(chars[n - 1 :])]
    else:
        parts = str(text).split(str(separator), -1 if n < 0 else n - 1)
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


# ------------------------------------------------------------------------------------------ isURL

_LETTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset(b"0123456789")
_ALNUM = _LETTERS | _DIGITS
_HEX = frozenset(b"0123456789abcdefABCDEF")
_HOST_OK = _ALNUM | frozenset(b"!$&'()*+,;=:[]<>\"-_.~")
_USERINFO_OK = _ALNUM | frozenset(b"-._:~!$&'()*+,;=%@")


def _valid_escapes(raw: bytes, host: bool) -> bool:
    """Go's url.unescape error checks: every % is followed by two hex digits; a host has only allowed bytes."""
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == ord("%"):
            if i + 2 >= len(raw) or raw[i + 1] not in _HEX or raw[i + 2] not in _HEX:
                return False
            if host and int(raw[i + 1 : i + 2], 16) < 8 and raw[i : i + 3] != b"%25":
                return False
            i += 3
            continue
        if host and c < 0x80 and c not in _HOST_OK:
            return False
        i += 1
    return True


def _valid_port(colon_port: bytes) -> bool:
    return colon_port == b"" or (colon_port[:1] == b":" and all(c in _DIGITS for c in colon_port[1:]))


def _valid_host(host: bytes) -> bool:
    if host.startswith(b"["):
        end = host.rfind(b"]")
        if end < 0 or not _valid_port(host[end + 1 :]):
            return False
    elif (colon := host.rfind(b":")) >= 0 and not _valid_port(host[colon:]):
        return False
    return _valid_escapes(host, host=True)


def _valid_authority(authority: bytes) -> bool:
    at = authority.rfind(b"@")
    if not _valid_host(authority[at + 1 :]):
        return False
    userinfo = authority[:at] if at >= 0 else b""
    return all(c in _USERINFO_OK for c in userinfo) and _valid_escapes(userinfo, host=False)


def _scheme(raw: bytes) -> tuple[bytes, bytes] | None:
    """Go's getScheme: (scheme, rest), or None for a leading ':' (missing protocol scheme)."""
    for i, c in enumerate(raw):
        if c in _LETTERS:
            continue
        if c in _DIGITS or c in b"+-.":
            if i == 0:
                return b"", raw
            continue
        if c == ord(":"):
            return None if i == 0 else (raw[:i], raw[i + 1 :])
        return b"", raw
    return b"", raw


def parse_request_uri(text: str) -> bool:
    """Whether Go's url.ParseRequestURI accepts `text`: an absolute URI, or an absolute path."""
    raw = text.encode()
    if not raw or any(c < 0x20 or c == 0x7F for c in raw):
        return False
    if raw == b"*":
        return True
    split_scheme = _scheme(raw)
    if split_scheme is None:
        return False
    scheme, rest = split_scheme
    rest = rest[:-1] if rest.endswith(b"?") and rest.count(b"?") == 1 else rest.partition(b"?")[0]
    if not rest.startswith(b"/"):
        return bool(scheme)  # an opaque URI such as mailto:x; a relative path is not a request URI
    if scheme and rest.startswith(b"//"):
        authority, slash, path = rest[2:].partition(b"/")
        if not _valid_authority(authority):
            return False
        rest = slash + path
    return _valid_escapes(rest, host=False)


def is_url(text: celtypes.StringType) -> celtypes.BoolType:
    """`isURL(s)`: the Kubernetes URL library's check, Go's url.ParseRequestURI succeeding."""
    return celtypes.BoolType(parse_request_uri(str(text)))


# ----------------------------------------------------------------------------------------- format

_VERB = re.compile(r"%(?:\.(\d+))?([a-zA-Z%])")
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_quote(text: str) -> str:
    """Go's strconv.Quote: printable characters as they are, the others escaped."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _shortest(value: float) -> decimal.Decimal:
    """The shortest decimal that reads back as `value` (Go's precision -1)."""
    return decimal.Decimal(repr(value)).normalize()


def _go_float(value: float) -> str:
    """Go's %g with the shortest precision, a double's string(): exponent form below 1e-4 and from 1e6 on."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    number = _shortest(value)
    sign, digits, exponent = number.as_tuple()
    power = len(digits) + int(exponent) - 1
    if -4 <= power < 6:
        return format(number, "f")
    mantissa = str(digits[0]) + ("." + "".join(map(str, digits[1:])) if len(digits) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{power:+03d}"


def _rfc3339_nano(moment: datetime.datetime) -> str:
    """Go's time.RFC3339Nano in the timestamp's own offset: fraction without trailing zeros, `Z` for UTC."""
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    minutes = int((moment.utcoffset() or datetime.timedelta()).total_seconds()) // 60
    if not minutes:
        return text + "Z"
    return text + f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _as_string(value: Any) -> str:
    """cel-go's FormatString, the `%s` of the strings extension at version 2 (the API server's): a scalar's
    string() conversion, `null`, and lists and maps with their members written as CEL literals."""
    if isinstance(value, celtypes.ListType):
        return "[" + ", ".join(_as_member(v) for v in value) + "]"
    if isinstance(value, celtypes.MapType):
        entries = sorted(((_as_key(k), _as_member(v)) for k, v in value.items()), key=lambda entry: entry[0])
        return "{" + ", ".join(f"{k}:{v}" for k, v in entries) + "}"
    if isinstance(value, celtypes.BoolType):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, celtypes.BytesType):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError as error:
            raise ValueError("format: invalid UTF-8 in bytes, cannot convert to string") from error
    if isinstance(value, celtypes.DurationType):
        return format(_shortest(value.total_seconds()), "f") + "s"
    if isinstance(value, celtypes.TimestampType):
        return _rfc3339_nano(value)
    if isinstance(value, celtypes.DoubleType):
        return _go_float(float(value))
    return str(value)


def _as_member(value: Any) -> str:
    """A list member or map value inside `%s` (cel-go's clauseForType and quoteForCEL)."""
    if isinstance(value, celtypes.StringType):
        return _go_quote(str(value))
    if isinstance(value, celtypes.BytesType):
        return "b" + _go_quote(_as_string(value))
    if isinstance(value, celtypes.DoubleType):
        return f"{float(value):.6f}" if math.isfinite(value) else _go_quote(_go_float(float(value)))
    if isinstance(value, celtypes.TimestampType):
        return f'timestamp("{_rfc3339_nano(value)}")'
    if isinstance(value, celtypes.DurationType):
        return f'duration("{_as_string(value)}")'
    return _as_string(value)


def _as_key(key: Any) -> str:
    if isinstance(key, (celtypes.StringType, celtypes.BoolType, celtypes.IntType, celtypes.UintType)):
        return _as_member(key)
    raise ValueError(f"format: no formatting function for map key of type {type(key).__name__}")


def _integer(value: Any, verb: str) -> int:
    if isinstance(value, celtypes.BoolType) or not isinstance(value, int):
        raise ValueError(f"format: %{verb} needs an integer, got {type(value).__name__}")
    return int(value)


def _double(value: Any, verb: str) -> float:
    """%f and %e take a double only (an int is an error), or the strings NaN, Infinity and -Infinity."""
    if isinstance(value, celtypes.StringType) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value)
    if not isinstance(value, celtypes.DoubleType):
        raise ValueError(f"format: %{verb} needs a double, got {type(value).__name__}")
    return float(value)


def _binary(value: Any) -> str:
    if isinstance(value, celtypes.BoolType):
        return "1" if value else "0"
    return format(_integer(value, "b"), "b")


def _hex(value: Any, upper: bool) -> str:
    if isinstance(value, (celtypes.StringType, celtypes.BytesType)):
        data = value.encode() if isinstance(value, celtypes.StringType) else bytes(value)
        out = data.hex()
    else:
        number = _integer(value, "x")
        out = ("-" if number < 0 else "") + format(abs(number), "x")
    return out.upper() if upper else out


_FORMATTERS: dict[str, Callable[[Any, int | None], str]] = {
    "s": lambda v, _: _as_string(v),
    "d": lambda v, _: str(_integer(v, "d")),
    "f": lambda v, p: f"{_double(v, 'f'):.{6 if p is None else p}f}",
    "e": lambda v, p: f"{_double(v, 'e'):.{6 if p is None else p}e}",
    "b": lambda v, _: _binary(v),
    "o": lambda v, _: format(_integer(v, "o"), "o"),
    "x": lambda v, _: _hex(v, upper=False),
    "X": lambda v, _: _hex(v, upper=True),
}


def string_format(template: celtypes.StringType, args: Sequence[Any]) -> celtypes.StringType:
    """`'...'.format([args])` of the strings extension: %s %d %f %e %b %o %x %X (with `.N` precision) and %%.

    Ported from cel-go's ext/formatting.go (commit 14f6746, 2026-06-11), the version-2 strings extension that
    k8s.io/apiserver's pkg/cel/environment/base.go loads. Not ported: its locale printer, which groups the
    thousands of %f and writes %e as `1.052033 × 10⁰³`; %e here is Go's plain `1.052033e+03`."""
    values = iter(args)
    missing = object()

    def substitute(match: re.Match[str]) -> str:
        precision, verb = match.group(1), match.group(2)
        if verb == "%":
            return "%"
        if verb not in _FORMATTERS:
            raise ValueError(f"format: unsupported verb %{verb}")
        value = next(values, missing)
        if value is missing:
            raise ValueError("format: fewer arguments than verbs")
        return _FORMATTERS[verb](value, None if precision is None else int(precision))

    return celtypes.StringType(_VERB.sub(substitute, str(template)))


# --------------------------------------------------------------------------------------- equality

_NUMBERS = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


def _equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, celtypes.BoolType) or isinstance(b, celtypes.BoolType):
        return isinstance(a, celtypes.BoolType) and isinstance(b, celtypes.BoolType) and bool(a) == bool(b)
    if isinstance(a, _NUMBERS) and isinstance(b, _NUMBERS):
        if isinstance(a, celtypes.DoubleType) or isinstance(b, celtypes.DoubleType):
            return float(a) == float(b)  # cel-go compares an int or a uint with a double as doubles
        return int(a) == int(b)  # ints and uints exactly, also past 2**53
    if isinstance(a, celtypes.ListType) and isinstance(b, celtypes.ListType):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, celtypes.MapType) and isinstance(b, celtypes.MapType):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def equal(a: Any, b: Any) -> Any:
    """`==` with CEL's heterogeneous equality: values of different types are unequal, numbers compare by value."""
    return a if isinstance(a, CELEvalError) else b if isinstance(b, CELEvalError) else celtypes.BoolType(_equal(a, b))


def not_equal(a: Any, b: Any) -> Any:
    result = equal(a, b)
    return result if isinstance(result, CELEvalError) else celtypes.BoolType(not result)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "split": split,
    "isURL": is_url,
    "format": string_format,
    "_==_": equal,
    "_!=_": not_equal,
}
"""Passed to every celpy program; names as CEL spells them."""
