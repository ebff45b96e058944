"""`python policies` serves the pack over gRPC like the analyzer plugin does, and it agrees with the offline runner."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fixtures import TPU_POOL, captured, messages, mutate
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policies.registry import POLICIES

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack's __main__ in its own process (as the CLI starts it); it prints its loopback port."""
    process = subprocess.Popen([sys.executable, "-u", str(REPO / "policies")], stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.kill()
        process.wait(timeout=10)


def test_served_pack_lists_every_policy(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "gke-inference"
    assert [p.name for p in info.policies] == [p.name for p in POLICIES]


def test_served_pack_reports_what_the_offline_runner_reports(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    pool = mutate(TPU_POOL, "nodeCount", 3)
    properties = struct_pb2.Struct()
    properties.update(pool)
    request = analyzer_pb2.AnalyzeRequest(
        type="gcp:container/nodePool:NodePool",
        properties=properties,
        urn="urn:pulumi:test::gke-inference::gcp:container/nodePool:NodePool::tpu",
        name="tpu",
        options=analyzer_pb2.AnalyzerResourceOptions(protect=True),
    )
    served = [d.message for d in analyzer.Analyze(request, timeout=30).diagnostics if d.policyName == "inf-tpu-pool-shape"]
    offline = messages("inf-tpu-pool-shape", captured("gcp:container/nodePool:NodePool", "tpu", pool, protect=True))
    description = next(p.description for p in POLICIES if p.name == "inf-tpu-pool-shape")
    assert offline and served == [f"{description}\n{m}" for m in offline]  # the server prefixes the description
