"""Structural admission as an API server does it: ObjectMeta's required name and field types, `multipleOf`,
the loading of whole-object JSON Schemas, and `check` leaving its input alone."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_admission import crd, index_of, messages, widget

from infra.admission import check, load_crds
from infra.admission.formats import parse_duration


def test_check_defaults_a_copy_and_leaves_the_object_it_was_given_alone(tmp_path: Path) -> None:
    """The plan writes the objects it checked: a default the API server would fill in must not leak into them."""
    spec = {
        "type": "object",
        "properties": {"tier": {"type": "object", "properties": {"mode": {"type": "string", "default": "Auto"}}}},
    }
    index = index_of(tmp_path, crd(spec))
    obj = widget({"tier": {}})
    given = copy.deepcopy(obj)
    assert check(obj, index) == []
    assert obj == given


def test_an_object_without_metadata_or_a_name_is_refused(tmp_path: Path) -> None:
    """ObjectMeta validation (k8s.io/apimachinery/pkg/api/validation ValidateObjectMeta): "name or generateName is
    required"; generateName alone is enough."""
    index = index_of(tmp_path, crd({"type": "object"}))
    bare = {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}}
    assert messages(bare, index) == ["Widget <unnamed>: metadata: required field missing; expected metadata.name, got nothing"]
    nameless = widget({})
    del nameless["metadata"]["name"]
    assert messages(nameless, index) == [
        "Widget ns/<unnamed>: metadata.name: required field missing; expected a name, got nothing"
    ]
    nameless["metadata"]["generateName"] = "w-"
    assert check(nameless, index) == []


def test_metadata_names_must_be_strings(tmp_path: Path) -> None:
    """ObjectMeta's name, generateName and namespace are Go strings: a number does not decode."""
    index = index_of(tmp_path, crd({"type": "object"}))
    obj = widget({})
    obj["metadata"] = {"generateName": 5}
    assert messages(obj, index) == ["Widget <unnamed>: metadata.generateName: wrong type; expected string, got integer"]


def test_a_whole_object_schema_of_the_core_group_has_an_empty_group(tmp_path: Path) -> None:
    """An apiVersion without a slash is the core group's ("v1"), as the API server splits it
    (k8s.io/apimachinery schema.ParseGroupVersion: no "/" means group "")."""
    schema = {"type": "object", "properties": {"apiVersion": {"enum": ["v1"]}, "kind": {"enum": ["ConfigMap"]}}}
    (tmp_path / "configmap.json").write_text(json.dumps(schema))
    assert [c.gvk for c in load_crds(tmp_path)] == [("", "v1", "ConfigMap")]


def test_multiple_of_as_kube_openapi_validates_it(tmp_path: Path) -> None:
    """kube-openapi pkg/validation/validate (d427ff9, 2026-07-21) numberValidator: an integer is checked exactly
    against the factor truncated to an integer (MultipleOfInt), a float as value / factor being a whole number
    within go-openapi/swag's IsFloat64AJSONInteger tolerance (MultipleOf), so 0.07 (1 / 0.01 * 0.07 = 7.000000000000001) is a multiple of 0.01."""
    spec = {
        "type": "object",
        "properties": {
            "replicas": {"type": "integer", "multipleOf": 4},
            "share": {"type": "number", "multipleOf": 0.01},
            "half": {"type": "number", "multipleOf": 0.5},
        },
    }
    index = index_of(tmp_path, crd(spec))
    assert check(widget({"replicas": 8, "share": 0.07, "half": 1.5}), index) == []
    assert messages(widget({"replicas": 6, "share": 0.035, "half": 2}), index) == [
        "Widget ns/w: spec.replicas: not a multiple; expected a multiple of 4, got 6",
        "Widget ns/w: spec.share: not a multiple; expected a multiple of 0.01, got 0.035",
        "Widget ns/w: spec.half: not a multiple; expected a multiple of 0.5, got 2",
    ]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("-1m30s", -90),
        ("-0", 0),
        ("1.5h", 5400),
        ("7d", 604800),
        ("2 weeks 1 hour", 1213200),
        ("3 seconds", 3),
        ("1h 2 fortnights", 3600),
        ("5 hrs", None),
        ("soon", None),
    ],
)
def test_duration_format_follows_strfmt_parse_duration(text: str, seconds: int | None) -> None:
    """kube-openapi strfmt.ParseDuration (pkg/validation/strfmt/duration.go, d427ff9): Go's time.ParseDuration
    first (a sign, "-0"), else every `<int> <unit>` summed where the unit is a spelling of its row or starts
    with the row's last one ("weeks", "hour"; not "hrs"), unknown units skipped, one known unit needed."""
    if seconds is None:
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(text)
    else:
        assert parse_duration(text).total_seconds() == seconds
