"""Problems, the error that lists them, and key paths spelled the way ``pulumi config set --path`` takes them."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

NAMESPACE = "gke-inference"


@dataclass(frozen=True)
class Problem:
    path: str
    problem: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}; expected {self.expected}, got {self.got}"


class ConfigError(Exception):
    """Every problem found in one stack configuration, one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems), key=lambda p: (p.path, p.problem))
        super().__init__("\n".join(str(p) for p in self.problems))


def key_path(*parts: str | int) -> str:
    """A key path as ``pulumi config set --path`` spells it: ns:a.b[0].c."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def ns_path(*parts: str | int) -> str:
    """A key path under our namespace: ns_path("tpu_pools", "a") is gke-inference:tpu_pools.a."""
    return key_path(f"{NAMESPACE}:{parts[0]}", *parts[1:])


def show(value: Any) -> str:
    """A value as an error message quotes it: strings quoted, None as 'nothing', the rest as JSON."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    return json.dumps(value, sort_keys=True, default=str)


def one_of(values: Collection[str]) -> str:
    return "one of " + ", ".join(sorted(values))
