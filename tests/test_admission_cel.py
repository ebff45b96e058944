"""What a CRD's CEL rules see and compute, checked against the Go the API server runs: how schema values are
typed (k8s.io/apiserver pkg/cel/common/valuesunstructured.go), CEL's numeric equality (cel-go
common/types/int.go and compare.go) and the strings extension's `format` (cel-go ext/formatting.go, the
version 2 that k8s.io/apiserver pkg/cel/environment/base.go loads). Upstream read at kubernetes/apiserver
24a394e (2026-07-23) and google/cel-go 14f6746 (2026-06-11)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from celpy.evaluation import CELEvalError
from test_admission import crd, index_of, messages, widget

from infra.admission import check
from infra.admission.crds import CRDVersion
from infra.admission.rules import compile_rule


def evaluate(rule: str) -> Any:
    compiled = compile_rule(rule)
    assert compiled.program is not None, compiled.error
    return compiled.program.evaluate({})


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("9007199254740993 == 9007199254740992", False),
        ("9007199254740993u == 9007199254740992", False),
        ("9007199254740993 == 9007199254740992.0", True),
        ("3u == 3 && 3 == 3.0 && 3u != 3.5", True),
    ],
)
def test_numbers_compare_as_cel_go_does(rule: str, expected: bool) -> None:
    """Int with int and int with uint compare exactly (compareIntUint); with a double, the int becomes a
    double first (compareDoubleInt), so 2**53 + 1 equals the double 2**53."""
    assert evaluate(rule) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("'%s'.format([timestamp('2024-01-02T03:04:05Z')])", "2024-01-02T03:04:05Z"),
        ("'%s'.format([timestamp('2024-01-02T03:04:05.250+02:00')])", "2024-01-02T03:04:05.25+02:00"),
        ("'%s'.format([duration('1.5s')])", "1.5s"),
        ("'%s > %s'.format([duration('90s'), duration('1m')])", "90s > 60s"),
        ("'%s %s %s %s'.format([0.5, 2.0, 1234567.0, 0.00001])", "0.5 2 1.234567e+06 1e-05"),
        (
            "'%s'.format([['a\"b', 2.5, null, b'x', timestamp('2024-01-02T03:04:05Z'), duration('2m')]])",
            '["a\\"b", 2.500000, null, b"x", timestamp("2024-01-02T03:04:05Z"), duration("120s")]',
        ),
        ("'%s %s %s %s'.format([0.0, -0.0, -1234567.0, double('Infinity')])", "0 -0 -1.234567e+06 +Inf"),
        ("'%s'.format([[double('NaN'), double('-Infinity'), -0.0]])", '["NaN", "-Inf", -0.000000]'),
        ("'%s'.format([['\\t\\u00a0\\x01\\U0001F600']])", '["\\t\\u00a0\\x01\U0001f600"]'),
        ("'%s'.format([{'b': 1, 'a': [true]}])", '{"a":[true], "b":1}'),
        ("'%b %b %o %X'.format([true, 5, 8, 'hi'])", "1 101 10 6869"),
    ],
)
def test_format_writes_values_as_cel_go_does(rule: str, expected: str) -> None:
    """%s is a scalar's string(): a timestamp in RFC 3339 with its own offset and no trailing zeros, a duration
    in seconds, a double as Go's %g; inside a list or map, members are CEL literals (strings quoted, doubles
    with six decimals), map entries sorted by key."""
    assert evaluate(rule) == expected


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("'%.1f'.format([2])", "%f needs a double"),
        ("'%e'.format([2])", "%e needs a double"),
        ("'%d'.format([2.0])", "%d needs an integer"),
        ("'%s'.format([{1.5: 1}])", "no formatting function for map key"),
        ("'%s'.format([b'\\xff'])", "invalid UTF-8"),
    ],
)
def test_format_refuses_what_cel_go_refuses(rule: str, error: str) -> None:
    """%f and %e take doubles only, %d integers only, a map key is a string, bool or integer, bytes are text."""
    with pytest.raises(CELEvalError, match=error):
        evaluate(rule)


def test_schema_formats_type_the_values_a_rule_sees(tmp_path: Path) -> None:
    """`date-time` and `date` are timestamps (a date-time keeps its offset), `datetime` stays a string (only the
    exact names are typed), a `number` is a double even when whole, and a duration keeps its sign."""
    spec = {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "stamp": {"type": "string", "format": "datetime"},
            "ratio": {"type": "number"},
            "offset": {"type": "string", "format": "duration"},
        },
        "x-kubernetes-validations": [
            {"rule": "self.at < timestamp('2030-01-01T00:00:00Z')", "messageExpression": "'at %s'.format([self.at])"},
            {"rule": "self.day == timestamp('2024-01-02T00:00:00Z')"},
            {"rule": "self.stamp.startsWith('2024')"},
            {"rule": "self.ratio / 4.0 == 0.5", "messageExpression": "'ratio %.1f'.format([self.ratio])"},
            {"rule": "self.offset < duration('0s')"},
        ],
    }
    index = index_of(tmp_path, crd(spec))
    good = {
        "at": "2024-01-02T03:04:05+02:00",
        "day": "2024-01-02",
        "stamp": "2024-01-02T03:04:05Z",
        "ratio": 2,
        "offset": "-1m30s",
    }
    assert check(widget(good), index) == []
    bad = {"at": "2031-01-02T03:04:05+02:00", "day": "2024-01-03", "stamp": "2023-01-02T03:04:05Z", "ratio": 3, "offset": "90s"}
    assert [m.split("; ")[0] for m in messages(widget(bad), index)] == [
        "Widget ns/w: spec: at 2031-01-02T03:04:05+02:00",
        "Widget ns/w: spec: failed rule: self.day == timestamp('2024-01-02T00:00:00Z')",
        "Widget ns/w: spec: failed rule: self.stamp.startsWith('2024')",
        "Widget ns/w: spec: ratio 3.0",
        "Widget ns/w: spec: failed rule: self.offset < duration('0s')",
    ]


def test_expressions_lists_every_rule_and_message_expression_for_compiling_up_front() -> None:
    schema = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "has(self.a)", "messageExpression": "'no a'"}, {"rule": "true", "message": "m"}],
        "properties": {"a": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self != ''"}]}}},
        "additionalProperties": {"type": "object", "x-kubernetes-validations": [{"rule": "size(self) > 0"}]},
    }
    version = CRDVersion("example.com", "v1", "Widget", schema, "inline")
    assert list(version.expressions()) == ["has(self.a)", "'no a'", "true", "self != ''", "size(self) > 0"]
