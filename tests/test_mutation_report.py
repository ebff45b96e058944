"""tools/mutation_report.py over a made-up mutmut result: the score counts caught against surviving mutants, an
allow-listed survivor leaves the score and the listing, and an allow-list entry without a reason is refused."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO


def report_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_report", REPO / "tools" / "mutation_report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_results(mutants: Path) -> None:
    """infra/sizing.py: 7 killed, 1 timed out, 2 survived (one equivalent), 1 reached by no test, 1 not run yet."""
    codes: dict[str, int | None] = {f"infra.sizing.x_f__mutmut_{i}": 1 for i in range(1, 8)}
    codes |= {
        "infra.sizing.x_f__mutmut_8": -24,
        "infra.sizing.x_f__mutmut_9": 0,
        "infra.sizing.x_g__mutmut_1": 0,
        "infra.sizing.x_g__mutmut_2": 33,
        "infra.sizing.x_g__mutmut_3": None,
    }
    (mutants / "infra").mkdir(parents=True)
    (mutants / "infra" / "sizing.py.meta").write_text(json.dumps({"exit_code_by_key": codes}))


def test_the_score_leaves_out_allow_listed_mutants_and_lists_the_rest(tmp_path: Path) -> None:
    write_results(tmp_path / "mutants")
    allow = tmp_path / "allow.yaml"
    allow.write_text(
        "infra.sizing.x_g__mutmut_1: a bound that the caller never reaches\ninfra.sizing.x_gone__mutmut_1: long fixed\n"
    )
    out = tmp_path / "report.md"
    report = report_module()
    args = ["--mutants", str(tmp_path / "mutants"), "--allowlist", str(allow), "--out", str(out), "--no-diffs"]
    assert report.main([*args, "--fail-under", "88"]) == 0
    text = out.read_text()
    assert "| infra/sizing.py | 88.9 % | 8 | 1 | 1 | 1 | 1 |" in text  # 8 caught of 9 judged
    assert "- `infra.sizing.x_f__mutmut_9` (survived)" in text
    assert "- `infra.sizing.x_g__mutmut_2` (no tests)" in text
    assert "x_g__mutmut_1`" not in text.split("## infra/sizing.py")[1].split("## Allow-list")[0]
    assert "- `infra.sizing.x_gone__mutmut_1`" in text.split("## Allow-list")[1]
    assert report.main([*args, "--fail-under", "90"]) == 1


def test_an_allow_list_entry_needs_a_reason(tmp_path: Path) -> None:
    allow = tmp_path / "allow.yaml"
    allow.write_text("infra.sizing.x_f__mutmut_9: ''\n")
    with pytest.raises(SystemExit, match=re.escape("no reason given for infra.sizing.x_f__mutmut_9")):
        report_module().read_allowlist(allow)


def test_the_shipped_allow_list_gives_every_entry_a_reason() -> None:
    entries = report_module().read_allowlist(REPO / "tests" / "mutation-allowlist.yaml")
    assert all(name.count("__mutmut_") == 1 for name in entries)
