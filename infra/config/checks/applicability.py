"""Keys that the workload's engine or mode never reads are refused, never dropped.

Every WorkloadConfig field is classified in WORKLOAD_FIELDS: the workloads it applies to, as a predicate over the
workload's Scope (engine, TPU or GPU, batch, autoscaled, behind the gateway) and the words the error prints. A key the
user wrote (pydantic's ``model_fields_set``: defaults never count) on a workload outside its scope is a problem. A new
field must be classified here (tests/test_inputs.py checks the table against the model), so a setting cannot again be
accepted and silently ignored. The same rule for sections that are switched off: gateway keys while the gateway is
disabled, Anywhere Cache keys while the cache is, the HTTP listener port beside TLS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from infra.config.checks.context import CheckContext
from infra.config.checks.serving import exposed_names
from infra.config.errors import ns_path
from infra.config.schema import WorkloadConfig

JETSTREAM = "jetstream-pathways"


@dataclass(frozen=True)
class Scope:
    """What decides which keys a workload reads."""

    engine: str
    on_tpu: bool
    """vLLM on a TPU pool (tpu_pools given): tensor parallel over the slice's chips, no GPU keys."""
    batch: bool
    autoscaled: bool
    exposed: bool
    """Behind the Inference Gateway (gateway.enabled and in gateway.routes, or every real-time server)."""

    @property
    def server(self) -> bool:
        """vLLM or Triton: a model server reading Hugging Face weights."""
        return self.engine in ("vllm", "triton")

    def describe(self) -> str:
        words = [self.engine]
        if self.on_tpu:
            words.append("on TPU")
        if self.batch:
            words.append("batch")
        if self.autoscaled:
            words.insert(0, "autoscaled")
        return " ".join(words)


@dataclass(frozen=True)
class Applies:
    test: Callable[[Scope], bool]
    where: str
    """Where the key applies, as the error says it."""


def _always(_: Scope) -> bool:
    return True


EVERY = Applies(_always, "every workload")
WORKLOAD_FIELDS: dict[str, Applies] = {
    "engine": EVERY,
    "model": EVERY,
    "weight_dtype": EVERY,
    "kv_cache_dtype": EVERY,
    "max_context": EVERY,
    "namespace": EVERY,
    "justification": EVERY,
    "max_prefill_length": Applies(lambda s: s.engine == JETSTREAM, "jetstream-pathways"),
    "per_device_batch_size": Applies(lambda s: s.engine == JETSTREAM, "jetstream-pathways (vllm and triton: max_num_seqs)"),
    "mode": Applies(lambda s: s.engine == JETSTREAM, "jetstream-pathways (MaxText's disaggregated server)"),
    "checkpoint": Applies(
        lambda s: s.engine == JETSTREAM, "jetstream-pathways (vllm and triton read the Hugging Face weights under hf/)"
    ),
    "tpu_pools": Applies(lambda s: s.engine in (JETSTREAM, "vllm"), "jetstream-pathways, and vllm on one single-host TPU pool"),
    "max_num_seqs": Applies(lambda s: s.server, "vllm and triton (jetstream-pathways: per_device_batch_size)"),
    "gpu_memory_utilization": Applies(lambda s: s.server, "vllm and triton"),
    "model_loading": Applies(lambda s: s.server, "vllm and triton"),
    "gpu_pool": Applies(lambda s: s.server and not s.on_tpu, "vllm and triton on a GPU pool"),
    "gpus": Applies(lambda s: s.server and not s.on_tpu, "vllm and triton on a GPU pool"),
    "tensor_parallel": Applies(
        lambda s: s.server and not s.on_tpu, "vllm and triton on a GPU pool (on TPU it is the slice's chips)"
    ),
    "batch": Applies(lambda s: s.engine == "vllm", "vllm (an offline run-batch Job)"),
    "autoscaling": Applies(lambda s: not s.batch, "real-time servers (a batch Job has no HPA: batch.parallelism)"),
    "replicas": Applies(
        lambda s: not s.batch and not s.autoscaled,
        "a fixed-size server (with autoscaling: min_replicas and max_replicas; batch: batch.parallelism)",
    ),
    "slo_ttft_s": Applies(lambda s: s.autoscaled, "an autoscaled workload (`gke-inference simulate` scores its HPA on it)"),
    "objectives": Applies(
        lambda s: s.engine == "vllm" and not s.batch and s.exposed,
        "a real-time vllm server behind the gateway (its endpoint picker reads them)",
    ),
}


def scope_of(name: str, c: WorkloadConfig, exposed: tuple[str, ...]) -> Scope:
    return Scope(
        engine=c.engine,
        on_tpu=c.engine == "vllm" and bool(c.tpu_pools),
        batch=c.batch is not None,
        autoscaled=c.autoscaling is not None,
        exposed=name in exposed,
    )


def check_workload_keys(ctx: CheckContext) -> None:
    exposed = exposed_names(ctx)
    for name, c in ctx.sections.workloads.items():
        scope = scope_of(name, c, exposed)
        for key in sorted(c.model_fields_set):
            rule = WORKLOAD_FIELDS[key]
            if not rule.test(scope):
                value = getattr(c, key)
                ctx.add(
                    ns_path("workloads", name, key),
                    f"{key} applies to {rule.where}; this {scope.describe()} workload would ignore it",
                    "the key removed",
                    value.model_dump() if hasattr(value, "model_dump") else _plain(value),
                )


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(sorted(value.items()))
    return value


def check_section_keys(ctx: CheckContext) -> None:
    """Keys of a switched-off section, or of a listener that is not rendered."""
    gw = ctx.sections.gateway
    if not gw.enabled:
        for key in sorted(gw.model_fields_set - {"enabled"}):
            value = getattr(gw, key)
            ctx.add(
                ns_path("gateway", key),
                "the gateway is disabled (gateway.enabled: false), so nothing reads this key",
                "the key removed, or gateway.enabled: true",
                value.model_dump() if hasattr(value, "model_dump") else _plain(value),
            )
    elif gw.tls is not None and "listener_port" in gw.model_fields_set:
        ctx.add(
            ns_path("gateway", "listener_port"),
            "with gateway.tls the one listener is HTTPS on 443; listener_port is the HTTP listener's port",
            "the key removed, or no tls",
            gw.listener_port,
        )
    elif gw.picker is not None and not any(
        n in ctx.sections.workloads and ctx.sections.workloads[n].engine == "vllm" for n in exposed_names(ctx)
    ):
        ctx.add(
            ns_path("gateway", "picker"),
            "no vllm server is behind the gateway, so no endpoint picker runs",
            "the key removed, or a vllm server among the routes",
            gw.picker.model_dump(),
        )
    cache = ctx.sections.model_storage.anywhere_cache
    if not cache.enabled:
        for key in sorted(cache.model_fields_set - {"enabled"}):
            ctx.add(
                ns_path("model_storage", "anywhere_cache", key),
                "Anywhere Cache is disabled (anywhere_cache.enabled: false), so nothing reads this key",
                "the key removed, or enabled: true",
                _plain(getattr(cache, key)),
            )
