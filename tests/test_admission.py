"""Offline admission of custom resources: inline CRDs (always) and the upstream schemas (where present)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from infra.admission import check, check_all, load_crds
from infra.admission.cel_library import parse_request_uri
from infra.admission.crds import CRDIndex
from infra.admission.rules import compile_rule
from infra.tooling.cli import EXIT_CHECKS, main

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = Path(os.environ.get("GKE_INFERENCE_SCHEMAS", REPO.parent / "shared" / "schemas"))
needs_schemas = pytest.mark.skipif(not SCHEMAS.is_dir(), reason="upstream schemas not available (conformance runs in CI)")


def crd(spec_schema: dict[str, Any], kind: str = "Widget", group: str = "example.com") -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}},
    }
    schema["properties"]["spec"] = spec_schema
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.lower()}s.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": f"{kind.lower()}s"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


def index_of(tmp_path: Path, *crds: dict[str, Any]) -> CRDIndex:
    (tmp_path / "crds.yaml").write_text(yaml.safe_dump_all(crds))
    return load_crds(tmp_path)


def widget(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "ns"}, "spec": spec}


def messages(obj: dict[str, Any], index: CRDIndex) -> list[str]:
    return [str(p) for p in check(obj, index)]


# ------------------------------------------------------------------------------- inline CRDs


def test_a_default_is_applied_before_the_rules_run(tmp_path: Path) -> None:
    spec = {
        "type": "object",
        "properties": {"mode": {"type": "string", "default": "Auto"}, "limit": {"type": "integer"}},
        "x-kubernetes-validations": [
            {"rule": "self.mode == 'Auto' ? has(self.limit) : true", "message": "Auto mode needs a limit"}
        ],
    }
    index = index_of(tmp_path, crd(spec))
    assert messages(widget({}), index) == [
        "Widget ns/w: spec: Auto mode needs a limit; expected `self.mode == 'Auto' ? has(self.limit) : true` to hold, got false"
    ]
    assert check(widget({"limit": 3}), index) == []
    assert check(widget({"mode": "Manual"}), index) == []


def test_a_required_field_the_schema_defaults_may_be_omitted_and_one_it_does_not_may_not(tmp_path: Path) -> None:
    """The API server defaults before it validates: a required field with a default is admitted absent (or null, not
    being nullable); a required field without one is refused at its key path."""
    spec = {
        "type": "object",
        "required": ["mode", "size"],
        "properties": {"mode": {"type": "string", "default": "Auto"}, "size": {"type": "integer"}},
    }
    index = index_of(tmp_path, crd(spec))
    assert check(widget({"size": 1}), index) == []
    assert check(widget({"size": 1, "mode": None}), index) == []
    assert messages(widget({"mode": "Manual"}), index) == [
        "Widget ns/w: spec.size: required field missing; expected `size`, got nothing"
    ]


def test_structural_problems_are_reported_at_their_key_path(tmp_path: Path) -> None:
    item = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        },
    }
    spec = {
        "type": "object",
        "required": ["size"],
        "properties": {
            "size": {"type": "integer", "format": "int32"},
            "policy": {"type": "string", "enum": ["Spread", "Pack"]},
            "targets": {
                "type": "array",
                "maxItems": 2,
                "items": item,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
            },
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
            "nothing": {"type": "string", "nullable": True},
            "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    index = index_of(tmp_path, crd(spec))
    good = {
        "size": 2,
        "policy": "Pack",
        "targets": [{"name": "a", "port": 80}],
        "port": "http",
        "labels": {"k": "v"},
        "nothing": None,
        "raw": {"x": {"y": 1}},
    }
    assert check(widget(good), index) == []
    bad = {
        "policy": "pack",
        "max_size": 3,
        "targets": [{"name": "a", "port": 0}, {"name": "a"}, {"port": 1}],
        "port": 1.5,
        "labels": {"app.kubernetes.io/name": "long"},
    }
    assert sorted(messages(widget(bad), index)) == sorted(
        [
            "Widget ns/w: spec.size: required field missing; expected `size`, got nothing",
            'Widget ns/w: spec.policy: value not allowed; expected one of "Spread", "Pack", got "pack"',
            "Widget ns/w: spec.max_size: unknown field (an API server would prune it); expected `size`, got `max_size`",
            "Widget ns/w: spec.targets: too many items; expected at most 2, got 3",
            'Widget ns/w: spec.targets[1]: duplicate entry with the same name (x-kubernetes-list-type: map); expected unique entries, got "a"',
            "Widget ns/w: spec.targets[0].port: too small; expected at least 1, got 0",
            "Widget ns/w: spec.targets[2].name: required field missing; expected `name`, got nothing",
            "Widget ns/w: spec.port: wrong type; expected an integer or a string, got number",
            "Widget ns/w: spec.labels['app.kubernetes.io/name']: too long; expected at most 3 characters, got 4 (\"long\")",
        ]
    )


def test_a_snake_case_key_is_named_with_its_camel_case_field(tmp_path: Path) -> None:
    index = index_of(tmp_path, crd({"type": "object", "properties": {"whenUnsatisfiable": {"type": "string"}}}))
    assert messages(widget({"when_unsatisfiable": "DoNotScaleUp"}), index) == [
        "Widget ns/w: spec.when_unsatisfiable: unknown field (an API server would prune it); expected `whenUnsatisfiable`, got `when_unsatisfiable`"
    ]


def test_root_metadata_is_checked_loosely_and_embedded_resources_may_carry_metadata(tmp_path: Path) -> None:
    embedded = {
        "type": "object",
        "x-kubernetes-embedded-resource": True,
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    index = index_of(tmp_path, crd({"type": "object", "properties": {"template": embedded}}))
    obj = widget(
        {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}}
    )
    obj["metadata"] |= {"labels": {"a": "b"}, "annotations": {"n": "1"}, "finalizers": ["x"]}
    assert check(obj, index) == []
    obj["metadata"] |= {"labels": {"a": 1}, "lables": {}}
    assert messages(obj, index) == [
        "Widget ns/w: metadata.labels.a: wrong type; expected string, got integer",
        "Widget ns/w: metadata.lables: unknown field (an API server would prune it); expected `labels`, got `lables`",
    ]


def test_rules_run_for_every_instance_with_escaped_names_field_path_and_message_expression(tmp_path: Path) -> None:
    ref = {
        "type": "object",
        "properties": {
            "namespace": {"type": "string"},
            "kind": {"type": "string", "default": "Service"},
            "port": {"type": "integer"},
        },
        "x-kubernetes-validations": [
            {
                "rule": "self.kind != 'Service' || has(self.port)",
                "messageExpression": "'%s %s needs a port'.format([self.kind, self.__namespace__])",
                "fieldPath": ".port",
                "reason": "FieldValueRequired",
            }
        ],
    }
    interval = {"type": "string", "format": "duration"}
    endpoint = {
        "type": "object",
        "properties": {"interval": interval, "timeout": interval},
        "x-kubernetes-validations": [{"rule": "self.timeout <= self.interval"}],
    }
    spec = {
        "type": "object",
        "properties": {"refs": {"type": "object", "additionalProperties": {"type": "array", "items": ref}}, "endpoint": endpoint},
    }
    index = index_of(tmp_path, crd(spec))
    obj = widget(
        {"refs": {"a": [{"namespace": "x", "port": 1}, {"namespace": "y"}]}, "endpoint": {"interval": "1m", "timeout": "90s"}}
    )
    assert messages(obj, index) == [
        "Widget ns/w: spec.refs.a[1].port: Service y needs a port [FieldValueRequired]; expected `self.kind != 'Service' || has(self.port)` to hold, got false",
        "Widget ns/w: spec.endpoint: failed rule: self.timeout <= self.interval; expected `self.timeout <= self.interval` to hold, got false",
    ]
    obj["spec"]["refs"]["a"][1]["kind"] = "InferencePool"
    obj["spec"]["endpoint"]["timeout"] = "30s"
    assert check(obj, index) == []


def test_transition_rules_are_skipped_and_broken_rules_are_problems(tmp_path: Path) -> None:
    rules = [
        {"rule": "self == oldSelf", "message": "immutable"},
        {"rule": "self.name.lowerAscii() == self.name"},
        {"rule": "self.name == (", "message": "syntax"},
        {"rule": "self.missing == 'x'"},
        {"rule": "self.name", "reason": "FieldValueInvalid"},
    ]
    index = index_of(
        tmp_path, crd({"type": "object", "properties": {"name": {"type": "string"}}, "x-kubernetes-validations": rules})
    )
    problems = check(widget({"name": "a"}), index)
    assert [(p.problem, p.expected, p.got) for p in problems] == [
        ("rule does not compile", "a rule celpy runs, `self.name.lowerAscii() == self.name`", "unknown function lowerAscii"),
        ("rule does not compile", "a rule celpy runs, `self.name == (`", "syntax error: self.name == ("),
        ("rule cannot be evaluated", "`self.missing == 'x'` to evaluate", "no such member in mapping: 'missing'"),
        ("rule did not give a bool [FieldValueInvalid]", "`self.name`", '"a"'),
    ]
    assert compile_rule("self == oldSelf").transition and compile_rule("has(x.y)").error == "undeclared variable x"


def test_loading_lists_documents_and_json_schemas(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [crd({"type": "object"}, kind="Gadget")]})
    )
    (tmp_path / "more.yml").write_text(yaml.safe_dump_all([crd({"type": "object"}), {"apiVersion": "v1", "kind": "ConfigMap"}]))
    whole = {
        "description": "FooPolicy says how.",
        "type": "object",
        "properties": {"spec": {"type": "object", "additionalProperties": False, "properties": {}}},
    }
    (tmp_path / "example.org_foopolicy_v2.json").write_text(json.dumps(whole))
    enum = {"type": "object", "properties": {"apiVersion": {"enum": ["x.io/v1"]}, "kind": {"enum": ["Bar"]}}}
    (tmp_path / "bar.json").write_text(json.dumps(enum))
    index = load_crds(tmp_path)
    assert sorted(c.gvk for c in index) == [
        ("example.com", "v1", "Gadget"),
        ("example.com", "v1", "Widget"),
        ("example.org", "v2", "FooPolicy"),
        ("x.io", "v1", "Bar"),
    ]
    foo = {"apiVersion": "example.org/v2", "kind": "FooPolicy", "metadata": {"name": "f"}, "spec": {"x": 1}}
    assert [p.problem for p in check(foo, index)] == ["unknown field (an API server would prune it)"]


def test_objects_without_a_crd_are_problems_and_built_in_objects_are_skipped(tmp_path: Path) -> None:
    index = index_of(tmp_path, crd({"type": "object"}))
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "t"}},
    ]
    assert [str(p) for p in check_all(objects, index)] == [
        f"Thing t: apiVersion: no CRD for x.io/v1 Thing in {tmp_path}; expected a CustomResourceDefinition serving it, got none"
    ]


def test_plan_with_crds_fails_for_a_custom_resource_without_its_crd(tmp_path: Path) -> None:
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "widgets.yaml").write_text(yaml.safe_dump(crd({"type": "object"})))
    result = CliRunner().invoke(
        main, ["plan", "prod", "--out", str(tmp_path / "out"), "--stacks-dir", str(REPO / "stacks"), "--crds", str(crds)]
    )
    assert result.exit_code == EXIT_CHECKS
    assert f"ComputeClass tpu-v6e-4x4: apiVersion: no CRD for cloud.google.com/v1 ComputeClass in {crds}" in result.stderr


# --------------------------------------------------------------------------- the CEL library


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("'n2d-standard-8'.split('-')", ["n2d", "standard", "8"]),
        ("'a/b/c'.split('/', 2)", ["a", "b/c"]),
        ("'abc'.split('', 2)", ["a", "bc"]),
        ("'abc'.split('-', 0)", []),
        ("''.split('/')", [""]),
        ("'%s > %s'.format([duration('90s'), duration('1m')])", "90s > 60s"),
        ("'%d of %s: %.2f %x %%'.format([3, ['a', true], 0.5, 255])", '3 of ["a", true]: 0.50 ff %'),
        ("isURL('https://user@example.com:8080/p?q=1')", True),
        ("isURL('example.com')", False),
        ("'metrics' != 0", True),
        ("1 == 1.0 && [1, 'a'] == [1, 'a'] && null == null", True),
        ("{'a': 1} == {'a': 'x'} || true == 1", False),
    ],
)
def test_kubernetes_cel_functions(rule: str, expected: Any) -> None:
    compiled = compile_rule(rule)
    assert compiled.program is not None, compiled.error
    assert compiled.program.evaluate({}) == expected


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("http://proxy.internal:3128", True),
        ("https://[::1]:8443/x", True),
        ("/just/a/path", True),
        ("mailto:ops@example.com", True),
        ("*", True),
        ("", False),
        ("proxy:3128/x", True),
        ("relative/path", False),
        ("http://host:port", False),
        ("http://ho st/", False),
        ("http://[::1/", False),
        ("http://h/%zz", False),
        ("://missing-scheme", False),
        ("http://h/\n", False),
        ("/a/%4z", False),
        ("/a/%4a", True),
        ("/a b", True),
        ("mailto:a b", True),
        ("/a\x7fb", False),
    ],
)
def test_is_url_follows_go_parse_request_uri(url: str, valid: bool) -> None:
    """Go's net/url ParseRequestURI (golang/go src/net/url/url.go): a control byte (below 0x20, or 0x7F:
    stringContainsCTLByte) is refused anywhere but a space is not; each % needs two hex digits (unescape)."""
    assert parse_request_uri(url) is valid


# --------------------------------------------------------------------- the upstream schemas


@pytest.fixture(scope="module")
def upstream() -> CRDIndex:
    if not SCHEMAS.is_dir():
        pytest.skip("upstream schemas not available (conformance runs in CI)")
    return load_crds(SCHEMAS)


@needs_schemas
def test_every_rule_in_every_upstream_schema_compiles(upstream: CRDIndex) -> None:
    kinds = {c.kind for c in upstream}
    assert {
        "ComputeClass",
        "GCPBackendPolicy",
        "HealthCheckPolicy",
        "HTTPRoute",
        "InferencePool",
        "LeaderWorkerSet",
        "PodMonitoring",
    } <= kinds
    expressions = [(c.source, e) for c in upstream for e in c.expressions()]
    assert len(expressions) > 300
    assert [(source, e, c.error) for source, e in expressions if (c := compile_rule(e)).error] == []


LWS: dict[str, Any] = {
    "apiVersion": "leaderworkerset.x-k8s.io/v1",
    "kind": "LeaderWorkerSet",
    "metadata": {"name": "llama-405b", "namespace": "inference"},
    "spec": {
        "replicas": 1,
        "leaderWorkerTemplate": {
            "size": 4,
            "restartPolicy": "RecreateGroupOnPodRestart",
            "workerTemplate": {"spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.1"}]}},
        },
    },
}
POOL: dict[str, Any] = {
    "apiVersion": "inference.networking.k8s.io/v1",
    "kind": "InferencePool",
    "metadata": {"name": "llama-8b", "namespace": "inference"},
    "spec": {
        "selector": {"matchLabels": {"app": "llama-8b"}},
        "targetPorts": [{"number": 8000}],
        "endpointPickerRef": {"name": "llama-8b-epp", "port": {"number": 9002}},
    },
}
ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "llama-8b", "namespace": "inference"},
    "spec": {
        "parentRefs": [{"name": "inference-gateway"}],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [
                    {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "llama-8b"},
                    {"name": "fallback", "port": 8000},
                ],
                "timeouts": {"request": "60s", "backendRequest": "30s"},
            }
        ],
    },
}


def _broken(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with the dotted path (list indexes as numbers) set to value, or deleted when value is None."""
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return out


BROKEN = [
    pytest.param(
        ROUTE,
        "spec.rules.0.backendRefs.1.port",
        None,
        "spec.rules[0].backendRefs[1]",
        "Must have port for Service reference",
        id="httproute-service-backend-without-port",
    ),
    pytest.param(
        POOL,
        "spec.endpointPickerRef.port",
        None,
        "spec.endpointPickerRef",
        "port is required when kind is 'Service'",
        id="inferencepool-picker-without-port",
    ),
    pytest.param(
        ROUTE,
        "spec.rules.0.timeouts.backendRequest",
        "90s",
        "spec.rules[0].timeouts",
        "backendRequest timeout cannot be longer than request timeout",
        id="httproute-backend-timeout-above-request",
    ),
    pytest.param(
        LWS,
        "spec.leaderWorkerTemplate.restart_policy",
        "None",
        "spec.leaderWorkerTemplate.restart_policy",
        "unknown field",
        id="lws-snake-case-key",
    ),
    pytest.param(
        LWS,
        "spec.leaderWorkerTemplate.restartPolicy",
        "Always",
        "spec.leaderWorkerTemplate.restartPolicy",
        "value not allowed",
        id="lws-wrong-enum",
    ),
    pytest.param(
        LWS,
        "spec.leaderWorkerTemplate.workerTemplate",
        None,
        "spec.leaderWorkerTemplate.workerTemplate",
        "required field missing",
        id="lws-missing-required",
    ),
    pytest.param(
        POOL,
        "spec.targetPorts",
        [{"number": 8000}, {"number": 8000}],
        "spec.targetPorts",
        "port number must be unique",
        id="inferencepool-duplicate-port",
    ),
]


@needs_schemas
@pytest.mark.parametrize(("fixed", "path", "value", "where", "problem"), BROKEN)
def test_upstream_schema_rejects_one_broken_rule_and_admits_the_fix(
    upstream: CRDIndex, fixed: dict[str, Any], path: str, value: Any, where: str, problem: str
) -> None:
    assert check(fixed, upstream) == []
    problems = check(_broken(fixed, path, value), upstream)
    assert [(p.path, problem in p.problem) for p in problems] == [(where, True)], [str(p) for p in problems]


@needs_schemas
def test_lws_subgroup_arithmetic_is_the_webhooks_not_the_upstream_schemas(upstream: CRDIndex) -> None:
    """The LWS CRD has no CEL rule for `size % subGroupSize`; its admission webhook checks that, and an
    offline check of the CRD cannot. If upstream moves the rule into the CRD, this test says so."""
    assert check(_broken(LWS, "spec.leaderWorkerTemplate.subGroupPolicy", {"subGroupSize": 3}), upstream) == []


@needs_schemas
def test_podmonitoring_defaults_typed_durations_and_message_expression_upstream_schema(upstream: CRDIndex) -> None:
    monitor = {
        "apiVersion": "monitoring.googleapis.com/v1",
        "kind": "PodMonitoring",
        "metadata": {"name": "vllm", "namespace": "inference"},
        "spec": {
            "selector": {"matchLabels": {"app": "vllm"}},
            "endpoints": [{"port": "metrics", "interval": "30s", "timeout": "1m"}],
        },
    }
    assert [str(p) for p in check(monitor, upstream)] == [
        "PodMonitoring inference/vllm: spec.endpoints[0]: scrape timeout (60s) must not be greater than scrape interval (30s); "
        "expected `!has(self.timeout) || self.timeout <= self.interval` to hold, got false"
    ]
    monitor["spec"]["endpoints"][0]["timeout"] = "10s"
    assert check(monitor, upstream) == []


def test_rendered_custom_resources_pass_upstream_schema_admission(tmp_path: Path) -> None:
    if not SCHEMAS.is_dir():
        pytest.skip("upstream schemas not available (conformance runs in CI)")
    result = CliRunner().invoke(main, ["plan", "--out", str(tmp_path), "--stacks-dir", str(REPO / "stacks")])
    assert result.exit_code == 0, result.output
    objects = [yaml.safe_load(p.read_text()) for p in sorted(tmp_path.glob("*/manifests/*.yaml")) if p.name != "references.yaml"]
    problems = check_all(objects, load_crds(SCHEMAS))
    assert [str(p) for p in problems] == []
    assert {"ComputeClass", "LeaderWorkerSet", "PodMonitoring"} <= {o["kind"] for o in objects}
