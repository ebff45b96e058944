"""tools/mutation_report.py over a made-up mutmut result: the score counts caught against surviving mutants, an
allow-listed survivor leaves the score and the listing, and an allow-list entry without a reason is refused; a sample
counts only its mutants and gives the score's interval."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO


def tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
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
    report = tool("mutation_report")
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
        tool("mutation_report").read_allowlist(allow)


def test_the_shipped_allow_list_gives_every_entry_a_reason() -> None:
    entries = tool("mutation_report").read_allowlist(REPO / "tests" / "mutation-allowlist.yaml")
    assert all(name.count("__mutmut_") == 1 for name in entries)


def test_a_sample_counts_only_its_mutants_and_bounds_the_score(tmp_path: Path) -> None:
    write_results(tmp_path / "mutants")
    sample = tmp_path / "sample.txt"
    sample.write_text("".join(f"infra.sizing.x_f__mutmut_{i}\n" for i in (1, 2, 3, 9)))
    out = tmp_path / "report.md"
    args = ["--mutants", str(tmp_path / "mutants"), "--allowlist", str(tmp_path / "none.yaml"), "--no-diffs"]
    assert tool("mutation_report").main([*args, "--sample", str(sample), "--out", str(out)]) == 0
    text = out.read_text()
    low, high = tool("mutation_report").wilson(3, 4)
    assert f"A random sample of 4 mutants, 4 judged: score 75.0 %, 95 % interval {low:.1f}-{high:.1f} %." in text
    assert "| infra/sizing.py | 75.0 % | 3 | 1 | 0 | 0 | 0 |" in text  # x_g's mutants were not drawn


def test_the_interval_holds_the_score_narrows_with_the_sample_and_meets_the_closed_form_at_zero() -> None:
    wilson = tool("mutation_report").wilson
    small, large = wilson(36, 40), wilson(360, 400)
    assert small[0] < large[0] < 90 < large[1] < small[1]
    assert wilson(0, 10) == pytest.approx((0.0, 100 * 1.96**2 / (10 + 1.96**2)))  # no successes: z^2 / (n + z^2)
    assert wilson(0, 0) == (0.0, 100.0)


def test_a_draw_is_the_same_for_the_same_seed_and_a_subset_of_the_names() -> None:
    draw = tool("mutation_sample").draw
    names = [f"m.x_f__mutmut_{i}" for i in range(100)]
    assert draw(names, 10, seed=1) == draw(reversed(names), 10, seed=1)
    assert set(draw(names, 10, seed=1)) <= set(names) and len(draw(names, 10, seed=1)) == 10
    assert draw(names, 10, seed=1) != draw(names, 10, seed=2)
    assert draw(names[:3], 10, seed=1) == sorted(names[:3])
