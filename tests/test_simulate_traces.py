"""Built-in traffic shapes (determinism and their Poisson statistics) and the CSV trace layouts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from infra.simulate.traces import BURST_FACTOR, Request, builtin, burst_window, load_csv, rate_at


def test_same_seed_same_trace_and_different_seed_different_trace() -> None:
    a = builtin("diurnal", duration_s=3600, base_rps=2, seed=7)
    assert a == builtin("diurnal", duration_s=3600, base_rps=2, seed=7)
    assert a != builtin("diurnal", duration_s=3600, base_rps=2, seed=8)


def test_arrivals_are_ordered_inside_the_run_and_lengths_positive() -> None:
    trace = builtin("ramp", duration_s=600, base_rps=5, prompt=(50, 200), output=(3, 10))
    assert [r.arrival_s for r in trace] == sorted(r.arrival_s for r in trace)
    assert all(0 <= r.arrival_s < 600 and r.prompt_tokens >= 1 and r.output_tokens >= 1 for r in trace)


def test_token_lengths_have_the_requested_mean() -> None:
    trace = builtin("steady", duration_s=2000, base_rps=5, prompt=(1000, 300), output=(200, 0))
    mean = sum(r.prompt_tokens for r in trace) / len(trace)
    assert abs(mean - 1000) < 5 * 300 / math.sqrt(len(trace))
    assert {r.output_tokens for r in trace} == {200}


def within_poisson(count: int, expected: float, sigmas: float = 5.0) -> bool:
    return abs(count - expected) <= sigmas * math.sqrt(expected)


def test_steady_count_is_poisson() -> None:
    assert within_poisson(len(builtin("steady", duration_s=3600, base_rps=3, seed=1)), 3 * 3600)


def test_burst_has_a_five_times_window() -> None:
    duration, base = 3600, 2.0
    start, end = burst_window(duration)
    assert (start, end) == (1500, 2100)
    trace = builtin("burst", duration_s=duration, base_rps=base, seed=3)
    inside = sum(start <= r.arrival_s < end for r in trace)
    outside = len(trace) - inside
    assert within_poisson(inside, BURST_FACTOR * base * (end - start))
    assert within_poisson(outside, base * (duration - (end - start)))
    # The rate ratio, with its error propagated from both Poisson counts.
    ratio = (inside / (end - start)) / (outside / (duration - (end - start)))
    assert abs(ratio - BURST_FACTOR) <= 5 * ratio * math.sqrt(1 / inside + 1 / outside)


def test_ramp_second_half_is_busier() -> None:
    trace = builtin("ramp", duration_s=1200, base_rps=1, seed=5)
    first = sum(r.arrival_s < 600 for r in trace)
    # Expected 0.2→1.1 rps over the first half (390) and 1.1→2 rps over the second (930).
    assert within_poisson(first, 390) and within_poisson(len(trace) - first, 930)


def test_diurnal_peaks_mid_period() -> None:
    assert rate_at("diurnal", 0, duration_s=3600, base_rps=10) == pytest.approx(4)
    assert rate_at("diurnal", 1800, duration_s=3600, base_rps=10) == pytest.approx(16)
    assert rate_at("diurnal", 43_200, duration_s=7 * 86_400, base_rps=10) == pytest.approx(16)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown trace shape"):
        builtin("spiky", duration_s=10, base_rps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mean > 0"):
        builtin("steady", duration_s=10, base_rps=1, prompt=(0, 1))
    assert len(builtin("steady", duration_s=10, base_rps=0)) == 0


def test_azure_trace(tmp_path: Path) -> None:
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "\n"
        "2023-11-16 18:16:46.6805900,879,7\n"
    )
    trace = load_csv(path)
    assert [r.arrival_s for r in trace] == pytest.approx([0.0, 4.314579, 60.0])
    assert [(r.prompt_tokens, r.output_tokens) for r in trace] == [(374, 44), (396, 109), (879, 7)]


def test_azure_trace_with_time_zones(tmp_path: Path) -> None:
    path = tmp_path / "azure_2024.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:01.5+00:00,10,2\n2024-05-10 00:00:00.009930+00:00,20,3\n"
    )
    assert load_csv(path) == [Request(0.0, 20, 3), Request(1.49007, 10, 2)]


def test_plain_layout(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n2.5,100,20\n0,50,10\n")
    assert load_csv(path) == [Request(0.0, 50, 10), Request(2.5, 100, 20)]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("arrival_s,prompt_tokens,output_tokens\n1,2,3\n1.5,abc,3\n", ":3: column prompt_tokens"),
        ("arrival_s,prompt_tokens,output_tokens\n-1,2,3\n", ":2: column arrival_s"),
        ("arrival_s,prompt_tokens,output_tokens\n1,2\n", ":2: expected 3 columns"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\nyesterday,1,2\n", ":3: column TIMESTAMP"),
        (
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1,2\n2023-11-16 18:15:47+00:00,1,2\n",
            ":3: column TIMESTAMP",
        ),
        ("time,in,out\n1,2,3\n", ":1: header"),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path: Path, body: str, where: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ValueError, match=f"^{path}{where}"):
        load_csv(path)
