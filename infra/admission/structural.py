"""Structural defaulting and validation of one object against its openAPIV3Schema, as an API server
does before it runs the CEL rules.

Walked by hand rather than handed to jsonschema: the Kubernetes extensions (int-or-string, preserve-
unknown-fields, embedded resources, list types) and the root metadata have no JSON Schema spelling, and
the walk gives the key paths the problems are reported at.
"""

from __future__ import annotations

import copy
import difflib
import functools
import math
from typing import Any

import re2

from infra.admission import formats
from infra.admission.problems import Problem, describe, index, key

OBJECT_META = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)


def default(value: Any, schema: dict[str, Any]) -> None:
    """Structural defaulting, in place (k8s.io/apiextensions-apiserver structuraldefaulting.Default, after
    PruneNonNullableNullsWithoutDefaults): a property's `default` fills it when absent, or null and not
    `nullable`; a non-nullable null without a default is dropped; then every property, map value and list
    item is defaulted in turn, so defaults inside a default apply too."""
    if isinstance(value, dict):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for name, prop in props.items():
            if "default" in prop and (name not in value or (value[name] is None and not prop.get("nullable"))):
                value[name] = copy.deepcopy(prop["default"])
        for name in list(value):
            sub = props.get(name, extra if isinstance(extra, dict) else None)
            if sub is None:
                continue
            if value[name] is None and not sub.get("nullable"):
                del value[name]
            else:
                default(value[name], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            default(item, schema["items"])


@functools.lru_cache(maxsize=1024)
def _pattern(pattern: str) -> Any:
    return re2.compile(pattern)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _has_type(value: Any, expected: str) -> bool:
    actual = _type_of(value)
    if expected == "integer":
        return actual == "integer" or (actual == "number" and float(value).is_integer())
    return actual == expected or (expected == "number" and actual == "integer")


def _same(a: Any, b: Any) -> bool:
    """JSON equality (in Python True == 1; in JSON 1 == 1.0)."""
    numbers = ("integer", "number")
    return a == b and (_type_of(a) == _type_of(b) or (_type_of(a) in numbers and _type_of(b) in numbers))


def _json_integer(number: float) -> bool:
    """go-openapi/swag IsFloat64AJSONInteger (v0.27.1): a whole number within ±(2**53 - 1), up to a relative 1e-9."""
    if not math.isfinite(number) or abs(number) > 2**53 - 1:
        return False
    rounded = float(round(number))
    return number == rounded or (rounded != 0 and abs(number - rounded) < 1e-9 * abs(rounded))


def _multiple(value: float, factor: float, type_: str | None) -> bool:
    """kube-openapi's numberValidator: an integer against the factor truncated to an integer, exactly (a factor of
    0.5 becomes 0, which no value passes), unless the factor does not fit an `integer` schema; otherwise
    value / factor (value * (1 / factor) for a factor below 1) within swag's tolerance, so 0.3 is a multiple of 0.1."""
    if isinstance(value, int) and (type_ != "integer" or float(factor).is_integer()):
        whole = int(factor)
        return whole > 0 and value % whole == 0
    if factor <= 0:
        return False
    return _json_integer(1 / factor * value if factor < 1 else value / factor)


class Validator:
    """Collects the problems of one value; `strict` is off inside anyOf/oneOf/allOf/not, whose branches
    constrain values but declare no fields."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, problem: str, expected: str, got: str) -> None:
        self.problems.append(Problem("", path, problem, expected, got))

    def root(self, obj: dict[str, Any], schema: dict[str, Any]) -> None:
        """The whole object, an embedded resource of sorts: `apiVersion` and `kind` are always allowed, and
        `metadata` is the API server's ObjectMeta, not the CRD's (`type: object`)."""
        self.metadata(obj.get("metadata"), "metadata", root=True)
        required = [r for r in schema.get("required", []) if r != "metadata"]
        self.value(
            {k: v for k, v in obj.items() if k != "metadata"},
            {**schema, "required": required, "x-kubernetes-embedded-resource": True},
            "",
        )

    def metadata(self, meta: Any, path: str, root: bool) -> None:
        """Loosely: an object of ObjectMeta fields, names and namespaces strings, labels and annotations string maps."""
        if meta is None:
            if root:
                self.add(path, "required field missing", "metadata.name", "nothing")
            return
        if not isinstance(meta, dict):
            self.add(path, "wrong type", "object", _type_of(meta))
            return
        if root and "name" not in meta and "generateName" not in meta:
            self.add(key(path, "name"), "required field missing", "a name", "nothing")
        for name, value in meta.items():
            where = key(path, name)
            if name not in OBJECT_META:
                self.unknown(where, name, OBJECT_META)
            elif name in ("name", "generateName", "namespace") and not isinstance(value, str):
                self.add(where, "wrong type", "string", _type_of(value))
            elif name in ("labels", "annotations"):
                if not isinstance(value, dict):
                    self.add(where, "wrong type", "object of strings", _type_of(value))
                    continue
                for k, v in value.items():
                    if not isinstance(v, str):
                        self.add(key(where, k), "wrong type", "string", _type_of(v))

    def unknown(self, path: str, name: str, known: frozenset[str] | set[str]) -> None:
        folded = {k.lower().replace("_", "").replace("-", ""): k for k in known}
        match = folded.get(name.lower().replace("_", "").replace("-", "")) or next(
            iter(difflib.get_close_matches(name, known, n=1)), None
        )
        expected = f"`{match}`" if match else f"one of the {len(known)} declared fields"
        self.add(path, "unknown field (an API server would prune it)", expected, f"`{name}`")

    def value(self, value: Any, schema: dict[str, Any], path: str, strict: bool = True) -> None:
        if value is None:
            if not schema.get("nullable") and strict:
                self.add(path, "null is not allowed", schema.get("type", "a value"), "null")
            return
        if schema.get("x-kubernetes-int-or-string"):
            if _type_of(value) not in ("integer", "string"):
                self.add(path, "wrong type", "an integer or a string", _type_of(value))
                return
        elif "type" in schema and not _has_type(value, schema["type"]):
            self.add(path, "wrong type", schema["type"], f"{_type_of(value)} {describe(value)}")
            return
        if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
            self.add(path, "value not allowed", "one of " + ", ".join(describe(e) for e in schema["enum"]), describe(value))
        if isinstance(value, str):
            self.string(value, schema, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.number(value, schema, path)
        elif isinstance(value, list):
            self.array(value, schema, path, strict)
        elif isinstance(value, dict):
            self.object(value, schema, path, strict)
        self.junctors(value, schema, path)

    def string(self, value: str, schema: dict[str, Any], path: str) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.add(path, "too short", f"at least {schema['minLength']} characters", f"{len(value)} ({describe(value)})")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.add(path, "too long", f"at most {schema['maxLength']} characters", f"{len(value)} ({describe(value)})")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            self.add(path, "does not match the pattern", f"a match of `{schema['pattern']}`", describe(value))
        check = formats.CHECKS.get(schema.get("format", ""))
        if check:
            try:
                check(value)
            except ValueError:
                self.add(path, "wrong format", f"a {schema['format']}", describe(value))

    def number(self, value: float, schema: dict[str, Any], path: str) -> None:
        if "minimum" in schema:
            low, exclusive = schema["minimum"], schema.get("exclusiveMinimum") is True
            if value < low or (exclusive and value == low):
                self.add(path, "too small", f"{'more than' if exclusive else 'at least'} {low}", describe(value))
        if "maximum" in schema:
            high, exclusive = schema["maximum"], schema.get("exclusiveMaximum") is True
            if value > high or (exclusive and value == high):
                self.add(path, "too large", f"{'less than' if exclusive else 'at most'} {high}", describe(value))
        if "multipleOf" in schema and not _multiple(value, schema["multipleOf"], schema.get("type")):
            self.add(path, "not a multiple", f"a multiple of {schema['multipleOf']}", describe(value))

    def array(self, value: list[Any], schema: dict[str, Any], path: str, strict: bool) -> None:
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.add(path, "too few items", f"at least {schema['minItems']}", str(len(value)))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.add(path, "too many items", f"at most {schema['maxItems']}", str(len(value)))
        list_type, map_keys = schema.get("x-kubernetes-list-type"), schema.get("x-kubernetes-list-map-keys") or []
        if list_type in ("set", "map"):
            seen: list[Any] = []
            for i, item in enumerate(value):
                identity = [item.get(k) for k in map_keys] if list_type == "map" and isinstance(item, dict) else item
                if identity in seen:
                    what = "entry with the same " + ", ".join(map_keys) if list_type == "map" else "value"
                    got = ", ".join(describe(v) for v in identity) if list_type == "map" else describe(identity)
                    self.add(index(path, i), f"duplicate {what} (x-kubernetes-list-type: {list_type})", "unique entries", got)
                seen.append(identity)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self.value(item, items, index(path, i), strict)

    def object(self, value: dict[str, Any], schema: dict[str, Any], path: str, strict: bool) -> None:
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        open_ended = extra is True or schema.get("x-kubernetes-preserve-unknown-fields") is True or not strict
        for name in schema.get("required", []):
            if name not in value:
                self.add(key(path, name), "required field missing", f"`{name}`", "nothing")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.add(path, "too few fields", f"at least {schema['minProperties']}", str(len(value)))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.add(path, "too many fields", f"at most {schema['maxProperties']}", str(len(value)))
        for name, item in value.items():
            where = key(path, name)
            if name in props:
                self.value(item, props[name], where, strict)
            elif isinstance(extra, dict):
                self.value(item, extra, where, strict)
            elif embedded and name == "metadata":
                self.metadata(item, where, root=False)
            elif embedded and name in ("apiVersion", "kind"):
                self.value(item, {"type": "string"}, where)
            elif not open_ended:
                self.unknown(where, name, set(props))

    def junctors(self, value: Any, schema: dict[str, Any], path: str) -> None:
        """anyOf/oneOf/allOf/not: value-only constraints (types come from the node itself)."""

        def fails(branch: dict[str, Any]) -> list[Problem]:
            sub = Validator()
            sub.value(value, branch, path, strict=False)
            return sub.problems

        if "anyOf" in schema:
            failures = [fails(b) for b in schema["anyOf"]]
            if all(failures):
                self.add(
                    path, "matches none of the anyOf alternatives", " or ".join(f[0].expected for f in failures), describe(value)
                )
        if "oneOf" in schema:
            passing = sum(not fails(b) for b in schema["oneOf"])
            if passing != 1:
                self.add(path, "must match exactly one of the oneOf alternatives", "1", str(passing))
        for branch in schema.get("allOf", []):
            self.problems.extend(fails(branch))
        if "not" in schema and not fails(schema["not"]):
            self.add(path, "matches the `not` schema", "a value it rejects", describe(value))
