"""One admission problem, in the project's config-error shape, and the key-path spelling it uses."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Problem:
    """`<Kind> <namespace>/<name>: <field path>: <problem>; expected <x>, got <y>` (the shape of infra.config.Problem)."""

    subject: str
    path: str
    problem: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.path or '<object>'}: {self.problem}; expected {self.expected}, got {self.got}"


def subject(obj: dict[str, Any]) -> str:
    """`Kind namespace/name`, or `Kind name` for a cluster-scoped object."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name, namespace = meta.get("name", "<unnamed>"), meta.get("namespace")
    return f"{obj.get('kind', '<no kind>')} {namespace}/{name}" if namespace else f"{obj.get('kind', '<no kind>')} {name}"


def key(path: str, name: str) -> str:
    """`spec.rules`, or `metadata.labels['app.kubernetes.io/name']` for a key that is no identifier."""
    if not _PLAIN_KEY.match(name):
        return f"{path}[{name!r}]"
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def describe(value: Any) -> str:
    """A short rendering of a value for `got ...`."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
