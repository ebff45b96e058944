"""`x-kubernetes-validations`: compile each CEL rule with celpy and run it against every instance of its
schema node, as an API server does on create.

Values reach CEL typed by their schema, as in Kubernetes: object properties are fields with escaped
names (`namespace` is `__namespace__`, `a-b` is `a__dash__b`), `additionalProperties` objects are maps,
strings of `format: duration`, `date-time`/`date` and `byte` are durations, timestamps and bytes.
Rules that read `oldSelf` are transition rules; on create there is no old object, so an API server skips
them, and so does this module. A rule that does not compile, calls a function neither celpy nor
`cel_library` provides, or fails to evaluate is a problem, never a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import base_functions

from infra.admission import formats
from infra.admission.cel_library import FUNCTIONS
from infra.admission.problems import Problem, describe, index, key

MACROS = frozenset({"has", "dyn", "all", "exists", "exists_one", "filter", "map"})
KNOWN_FUNCTIONS = MACROS | base_functions.keys() | FUNCTIONS.keys()
_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)
_ENVIRONMENT = celpy.Environment()


@dataclass(frozen=True)
class CompiledRule:
    program: celpy.Runner | None
    error: str | None
    transition: bool


def _single_ident(tree: Any) -> str | None:
    while isinstance(tree, lark.Tree) and len(tree.children) == 1:
        if tree.data == "ident":
            return str(tree.children[0])
        tree = tree.children[0]
    return None


def _names(ast: lark.Tree) -> tuple[set[str], set[str], set[str]]:
    """(functions called, identifiers read, identifiers bound by a macro such as `all(x, ...)`)."""
    functions, identifiers, bound = set(), set(), set()
    for node in ast.iter_subtrees():
        if node.data == "member_dot_arg":
            functions.add(str(node.children[1]))
            args = node.children[2] if len(node.children) > 2 else None
            if str(node.children[1]) in MACROS and isinstance(args, lark.Tree) and args.children:
                name = _single_ident(args.children[0])
                if name:
                    bound.add(name)
        elif node.data in ("ident_arg", "dot_ident_arg"):
            functions.add(str(node.children[0]))
        elif node.data in ("ident", "dot_ident"):
            identifiers.add(str(node.children[0]))
    return functions, identifiers, bound


def compile_rule(text: str) -> CompiledRule:
    """Parse with celpy and check names statically (celpy would find an unknown function only when
    evaluation reaches it): the functions must be known, the free variables `self` or `oldSelf`."""
    try:
        ast = _ENVIRONMENT.compile(text)
    except celpy.CELParseError as error:
        return CompiledRule(None, f"syntax error: {str(error).splitlines()[0]}", False)
    functions, identifiers, bound = _names(ast)
    unknown = sorted(functions - KNOWN_FUNCTIONS)
    if unknown:
        return CompiledRule(None, "unknown function " + ", ".join(unknown), False)
    free = sorted(identifiers - bound - {"self", "oldSelf"})
    if free:
        return CompiledRule(None, "undeclared variable " + ", ".join(free), False)
    return CompiledRule(_ENVIRONMENT.program(ast, functions=FUNCTIONS), None, "oldSelf" in identifiers)


def escape(name: str) -> str | None:
    """Kubernetes' CEL escaping of a property name; None for a name CEL cannot reach."""
    if not name or name[0].isdigit() or not all(c.isascii() and (c.isalnum() or c in "_.-/") for c in name):
        return None
    if name in _RESERVED:
        return f"__{name}__"
    return name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")


def _typed_string(text: str, fmt: str | None) -> Any:
    """k8s.io/apiserver pkg/cel/common/valuesunstructured.go: exactly the formats `duration`, `date`, `date-time`
    (not its alias `datetime`, which stays a string) and `byte` are typed; a date-time keeps its offset."""
    if fmt == "duration":
        return celtypes.DurationType(formats.parse_duration(text))
    if fmt in ("date-time", "date"):
        return celtypes.TimestampType(formats.parse_date(text) if fmt == "date" else formats.parse_date_time(text))
    if fmt == "byte":
        return celtypes.BytesType(formats.parse_byte(text))
    return celtypes.StringType(text)


def to_cel(value: Any, schema: dict[str, Any]) -> Any:
    """The CEL value of a (structurally valid) JSON value under its schema."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, (int, float)):  # by the schema's type, as valuesunstructured.go: 2 in a `number` is a double
        double = schema.get("type") == "number" or (isinstance(value, float) and schema.get("type") != "integer")
        return celtypes.DoubleType(float(value)) if double else celtypes.IntType(int(value))
    if isinstance(value, str):
        return _typed_string(value, schema.get("format"))
    if isinstance(value, list):
        return celtypes.ListType([to_cel(item, schema.get("items") or {}) for item in value])
    props, extra = schema.get("properties"), schema.get("additionalProperties")
    if props:
        fields = {}
        for k, v in value.items():
            name = escape(k) if k in props else None
            if name:
                fields[celtypes.StringType(name)] = to_cel(v, props[k])
        return celtypes.MapType(fields)
    item_schema = extra if isinstance(extra, dict) else {}
    return celtypes.MapType({celtypes.StringType(k): to_cel(v, item_schema) for k, v in value.items()})


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return f"`{flat}`" if len(flat) <= 100 else f"`{flat[:97]}...`"


def _message(rule: dict[str, Any], compiled: Callable[[str], CompiledRule], activation: dict[str, Any]) -> str:
    """messageExpression when it yields a non-empty string, else message, else the API server's default."""
    if rule.get("messageExpression"):
        program = compiled(rule["messageExpression"]).program
        try:
            text = program.evaluate(activation) if program else None
        except celpy.CELEvalError:
            text = None
        if isinstance(text, str) and text.strip():
            return str(text)
    return str(rule.get("message") or f"failed rule: {' '.join(rule['rule'].split())}")


def _field_path(path: str, field_path: str | None) -> str:
    if not field_path:
        return path
    return (path + field_path) if path else field_path.lstrip(".")


def check_node(
    value: Any, schema: dict[str, Any], path: str, compiled: Callable[[str], CompiledRule], out: list[Problem]
) -> None:
    """Run the node's rules with `self` bound to `value`, then recurse into every property, item and map value."""
    if value is None:
        return
    rules = schema.get("x-kubernetes-validations") or ()
    activation: dict[str, Any] | None = None
    for rule in rules:
        program = compiled(rule["rule"])
        if program.transition:
            continue
        reason = f" [{rule['reason']}]" if rule.get("reason") else ""
        if program.program is None:
            out.append(
                Problem(
                    "", path, "rule does not compile" + reason, f"a rule celpy runs, {_short(rule['rule'])}", str(program.error)
                )
            )
            continue
        activation = activation or {"self": to_cel(value, schema)}
        try:
            result = program.program.evaluate(activation)
        except celpy.CELEvalError as error:
            problem = "rule cannot be evaluated" + reason
            out.append(
                Problem("", path, problem, f"{_short(rule['rule'])} to evaluate", str(error.args[0] if error.args else error))
            )
            continue
        if not isinstance(result, celtypes.BoolType):
            out.append(Problem("", path, "rule did not give a bool" + reason, _short(rule["rule"]), describe(str(result))))
        elif not result:
            target = _field_path(path, rule.get("fieldPath"))
            out.append(
                Problem("", target, _message(rule, compiled, activation) + reason, f"{_short(rule['rule'])} to hold", "false")
            )
    if isinstance(value, dict):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is not None:
                check_node(v, sub, key(path, k), compiled, out)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            check_node(item, schema["items"], index(path, i), compiled, out)
