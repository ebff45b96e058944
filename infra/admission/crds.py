"""Load CustomResourceDefinitions and whole-object JSON Schemas from a folder, indexed by (group, version, kind)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.admission.rules import CompiledRule, compile_rule

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when present: the LeaderWorkerSet CRD alone is 1.3 MB."""

GVK = tuple[str, str, str]


@dataclass
class CRDVersion:
    """The schema of one served version of one kind; compiles each CEL rule once, on first use."""

    group: str
    version: str
    kind: str
    schema: dict[str, Any]
    source: str
    _programs: dict[str, CompiledRule] = field(default_factory=dict, repr=False)

    @property
    def gvk(self) -> GVK:
        return (self.group, self.version, self.kind)

    def compiled(self, text: str) -> CompiledRule:
        if text not in self._programs:
            self._programs[text] = compile_rule(text)
        return self._programs[text]

    def expressions(self) -> Iterator[str]:
        """Every `rule` and `messageExpression` of the schema (for compiling them all up front)."""

        def walk(node: Any) -> Iterator[str]:
            if not isinstance(node, dict):
                return
            for rule in node.get("x-kubernetes-validations", ()):
                yield rule["rule"]
                if rule.get("messageExpression"):
                    yield rule["messageExpression"]
            for child in (node.get("properties") or {}).values():
                yield from walk(child)
            yield from walk(node.get("items"))
            yield from walk(node.get("additionalProperties"))

        return walk(self.schema)


class CRDIndex:
    """The schemas found in one folder; `get` finds the one for an object's apiVersion and kind."""

    def __init__(self, directory: Path, versions: dict[GVK, CRDVersion]):
        self.directory = directory
        self.versions = versions

    def get(self, group: str, version: str, kind: str) -> CRDVersion | None:
        return self.versions.get((group, version, kind))

    def __iter__(self) -> Iterator[CRDVersion]:
        return iter(self.versions.values())

    def __len__(self) -> int:
        return len(self.versions)


def _from_crd(crd: dict[str, Any], source: str) -> Iterator[CRDVersion]:
    spec = crd["spec"]
    for version in spec["versions"]:
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if version.get("served", True) and schema:
            yield CRDVersion(spec["group"], version["name"], spec["names"]["kind"], schema, source)


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    for document in yaml.load_all(path.read_text(), Loader=Loader):
        if isinstance(document, dict) and document.get("kind") == "List":
            yield from document.get("items") or []
        elif isinstance(document, dict):
            yield document


_JSON_NAME = re.compile(r"^(?P<group>[^_]+)_(?P<kind>[^_]+)_(?P<version>[^_]+)\.json$")


def _from_json_schema(schema: dict[str, Any], path: Path) -> CRDVersion:
    """A JSON Schema of a whole object (the community extractions): its apiVersion and kind come from
    the schema's `enum`s when it has them, else from the file name `<group>_<kind>_<version>.json`, whose
    lowercase kind gets its capitals back from the description ("ComputeClass is a way ...")."""
    props = schema.get("properties") or {}
    api_versions, kinds = props.get("apiVersion", {}).get("enum") or [], props.get("kind", {}).get("enum") or []
    name = _JSON_NAME.match(path.name)
    if len(api_versions) == 1:
        group, _, version = str(api_versions[0]).rpartition("/")
    elif name:
        group, version = name["group"], name["version"]
    else:
        raise ValueError(
            f"{path}: cannot tell the apiVersion (no single properties.apiVersion.enum, no <group>_<kind>_<version>.json name)"
        )
    if len(kinds) == 1:
        kind = str(kinds[0])
    elif name:
        words = re.findall(r"[A-Za-z0-9]+", str(schema.get("description", "")))
        kind = next((w for w in words if w.lower() == name["kind"].lower()), name["kind"])
    else:
        raise ValueError(f"{path}: cannot tell the kind (no single properties.kind.enum, no <group>_<kind>_<version>.json name)")
    return CRDVersion(group, version, kind, schema, str(path))


def load_crds(directory: Path) -> CRDIndex:
    """Every CRD in the folder's `.yaml`/`.yml` files (one or many documents, or a `kind: List` as
    `kubectl get crd -o yaml` prints) and every whole-object JSON Schema in its `.json` files."""
    versions: dict[GVK, CRDVersion] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in (".yaml", ".yml"):
            found = [
                v for doc in _documents(path) if doc.get("kind") == "CustomResourceDefinition" for v in _from_crd(doc, str(path))
            ]
        elif path.suffix == ".json":
            found = [_from_json_schema(json.loads(path.read_text()), path)]
        else:
            continue
        for crd in found:
            if crd.gvk in versions:
                raise ValueError(f"{path}: {crd.group}/{crd.version} {crd.kind} is already defined in {versions[crd.gvk].source}")
            versions[crd.gvk] = crd
    return CRDIndex(directory, versions)
