"""A post-deploy load test of one routed model: kubernetes-sigs/inference-perf as a suspended CronJob.

Nothing runs on a schedule: after a deploy, `kubectl create job -n <ns> --from=cronjob/<workload>-load-test
<workload>-load-test-$(date +%s)` runs it once. inference-perf reads its config from a ConfigMap (typed below, keys as
inference-perf 0.7.0's `inference_perf/config/` pydantic models, which forbid unknown keys) and uploads its report to
`gs://<bucket>/benchmarks/<workload>/<YYYYmmdd-HHMMSS>/` (its GCS client: `<path>/<file>`, the path's `{timestamp}`
replaced by the run's start). The files it writes there, with per-stage and per-request reports on:
`config.yaml` (the resolved config, JSON-encoded), `summary_lifecycle_metrics.json`, `stage_<i>_lifecycle_metrics.json`
(one per rate step, i from 0) and `per_request_lifecycle_metrics.json` (each request's timings and token counts,
`computed_metrics` only: no prompt or response text). `simulate --calibrate` reads these names.

Identity: a Kubernetes service account of its own, with, on the model bucket only:
- `roles/storage.objectCreator` on `benchmarks/<workload>/` (an IAM condition on the object name): it can add reports,
  not overwrite or delete anything (overwriting needs `storage.objects.delete`). A resumable upload needs no more than
  `storage.objects.create`; inference-perf's reports are small and go up in one request anyway.
- `roles/storage.objectViewer` on the same prefix: inference-perf calls `blob.exists()` before each upload
  (`client/filestorage/gcs.py`), which is `storage.objects.get`; without it the upload fails with 403, not 404.
- `roles/storage.bucketViewer` on the bucket itself (a condition `resource.name == "projects/_/buckets/<bucket>"`): the
  client opens with `lookup_bucket` (`storage.buckets.get`, bucket metadata), which an object-prefix condition cannot
  admit. It shows no object. (The legacy bucket roles would add `storage.objects.list` on every object and refuse
  conditions.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.identity import KubernetesAccount, grant_bucket_role
from components.model_server import RUN_AS, checkov_annotations
from components.pod_security import restricted_container, restricted_pod
from components.weights_download import TOKEN_SECRET

CONFIG_DIR = "/etc/inference-perf"
CONFIG_FILE = "config.yml"
TIMESTAMP = "{timestamp}"
"""inference-perf replaces it in a storage path with the run's start time, %Y%m%d-%H%M%S (config/__init__.py read_config)."""
REPORT_FILES = (
    "config.yaml",
    "summary_lifecycle_metrics.json",
    "stage_{i}_lifecycle_metrics.json",
    "per_request_lifecycle_metrics.json",
)
"""The objects one run writes under its timestamped folder (reportgen/base.py ReportFile names)."""
CPUS = 2
"""inference-perf runs one worker process per CPU (load.num_workers)."""
SUSPENDED_SCHEDULE = "@yearly"
"""A CronJob needs a schedule even when suspended; it never fires while `suspend` is true."""
PREFIX_ROLES = ("roles/storage.objectCreator", "roles/storage.objectViewer")
BUCKET_ROLE = "roles/storage.bucketViewer"
HF_TOKEN_KEY = "token"
TOKEN_DIR = "/etc/hf-token"
"""Key of the Secret the weights download writes in a namespace when a token is configured (optional here: a public
tokenizer needs none)."""


def account_name(workload: str) -> str:
    return f"{workload}-load-test"


@dataclass(frozen=True)
class Distribution:
    """inference-perf's `Distribution` (config/common.py), in tokens."""

    mean: float
    std_dev: float
    min: int
    max: int
    type: Literal["lognormal"] = "lognormal"


@dataclass(frozen=True)
class Stage:
    """A `StandardLoadStage` (config/loadgen/config.py): requests per second for `duration` seconds."""

    rate: float
    duration: int


@dataclass(frozen=True)
class InferencePerfConfig:
    """The subset of inference-perf's `Config` this stack sets; every other key keeps inference-perf's default."""

    model_name: str
    base_url: str
    """Up to the route's prefix: the client appends /v1/completions."""
    tokenizer: str
    """Hugging Face id of the model's tokenizer (prompts are generated to token lengths)."""
    prompt: Distribution
    output: Distribution
    stages: tuple[Stage, ...]
    request_timeout_s: int
    max_in_flight: int
    """Spread over the worker processes (load.worker_max_concurrency is per worker)."""
    bucket: str
    report_path: str
    seed: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "api": {"type": "completion", "streaming": True, **({"headers": self.headers} if self.headers else {})},
            "data": {"type": "random", "input_distribution": asdict(self.prompt), "output_distribution": asdict(self.output)},
            "load": {
                "type": "poisson",
                "stages": [asdict(s) for s in self.stages],
                "num_workers": CPUS,
                "worker_max_concurrency": -(-self.max_in_flight // CPUS),
                "request_timeout": self.request_timeout_s,
                "base_seed": self.seed,
            },
            "server": {"type": "vllm", "model_name": self.model_name, "base_url": self.base_url, "ignore_eos": True},
            "tokenizer": {"pretrained_model_name_or_path": self.tokenizer},
            "report": {
                "request_lifecycle": {
                    "summary": True,
                    "per_stage": True,
                    "per_request": True,
                    "per_request_fields": {
                        "request": False,
                        "response": False,
                        "info": False,
                        "response_chunks": False,
                        "computed_metrics": True,
                    },
                }
            },
            "storage": {
                "local_storage": {"path": f"/tmp/reports-{TIMESTAMP}"},
                "google_cloud_storage": {"bucket_name": self.bucket, "path": self.report_path},
            },
        }


@dataclass(frozen=True)
class LoadTestArgs:
    project: str
    namespace: str
    workload: str
    bucket: str
    report_prefix: str
    """benchmarks/<workload>/: the only objects the Job's account may create."""
    image: str
    config: pulumi.Input[InferencePerfConfig]
    checkov_skips: dict[str, str]
    annotations: dict[str, str]
    """Named policy exceptions of the CronJob (an undigested image)."""


class LoadTest(pulumi.ComponentResource):
    """ServiceAccount, bucket grants, ConfigMap, suspended CronJob and a deny-ingress NetworkPolicy for one model."""

    def __init__(self, name: str, args: LoadTestArgs, opts: pulumi.ResourceOptions):
        """`opts` carries both providers: Google for the bucket grants, Kubernetes for the objects."""
        super().__init__("gke-inference:serving:LoadTest", name, None, opts)
        core, meta = k8s.core.v1, k8s.meta.v1
        child = pulumi.ResourceOptions(parent=self)
        ksa = account_name(args.workload)
        labels = {"app.kubernetes.io/name": ksa, "app.kubernetes.io/component": "load-test"}
        account = core.ServiceAccount(
            f"{name}-sa",
            metadata=meta.ObjectMetaArgs(name=ksa, namespace=args.namespace),
            automount_service_account_token=False,
            opts=child,
        )
        member = (KubernetesAccount(args.namespace, ksa),)
        for role in PREFIX_ROLES:
            grant_bucket_role(
                f"{name}-{role.rsplit('.', 1)[-1]}", args.bucket, role, member, args.project, self, args.report_prefix
            )
        grant_bucket_role(
            f"{name}-{BUCKET_ROLE.rsplit('.', 1)[-1]}", args.bucket, BUCKET_ROLE, member, args.project, self, bucket_only=True
        )
        config = core.ConfigMap(
            f"{name}-config",
            metadata=meta.ObjectMetaArgs(name=ksa, namespace=args.namespace, labels=labels),
            data={
                CONFIG_FILE: pulumi.Output.from_input(args.config).apply(lambda c: yaml.safe_dump(c.to_dict(), sort_keys=False))
            },
            opts=child,
        )
        skips = checkov_annotations(args.checkov_skips)
        container = core.ContainerArgs(
            name="inference-perf",
            image=args.image,
            image_pull_policy="IfNotPresent",
            command=["inference-perf"],
            args=["--config_file", f"{CONFIG_DIR}/{CONFIG_FILE}"],
            env=[
                core.EnvVarArgs(name="HOME", value="/tmp"),
                core.EnvVarArgs(name="HF_HOME", value="/tmp/hf"),
                # huggingface_hub reads the token from this file: the Secret stays a file, never an env value.
                core.EnvVarArgs(name="HF_TOKEN_PATH", value=f"{TOKEN_DIR}/{HF_TOKEN_KEY}"),
            ],
            resources=core.ResourceRequirementsArgs(
                requests={"cpu": str(CPUS), "memory": "4Gi"}, limits={"cpu": str(CPUS), "memory": "4Gi"}
            ),
            security_context=restricted_container(),
            volume_mounts=[
                core.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
                core.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                core.VolumeMountArgs(name="hf-token", mount_path=TOKEN_DIR, read_only=True),
            ],
        )
        k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata=meta.ObjectMetaArgs(
                name=ksa, namespace=args.namespace, labels=labels, annotations={**skips, **args.annotations} or None
            ),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=SUSPENDED_SCHEDULE,
                suspend=True,
                concurrency_policy="Forbid",
                job_template=k8s.batch.v1.JobTemplateSpecArgs(
                    spec=k8s.batch.v1.JobSpecArgs(
                        backoff_limit=0,
                        ttl_seconds_after_finished=86400,
                        template=core.PodTemplateSpecArgs(
                            metadata=meta.ObjectMetaArgs(labels=labels, annotations=skips or None),
                            spec=core.PodSpecArgs(
                                service_account_name=ksa,
                                automount_service_account_token=False,
                                restart_policy="Never",
                                security_context=restricted_pod(RUN_AS),
                                containers=[container],
                                volumes=[
                                    core.VolumeArgs(name="config", config_map=core.ConfigMapVolumeSourceArgs(name=ksa)),
                                    core.VolumeArgs(name="tmp", empty_dir=core.EmptyDirVolumeSourceArgs()),
                                    core.VolumeArgs(
                                        name="hf-token",
                                        secret=core.SecretVolumeSourceArgs(secret_name=TOKEN_SECRET, optional=True),
                                    ),
                                ],
                            ),
                        ),
                    )
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, config]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta.ObjectMetaArgs(name=ksa, namespace=args.namespace),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=meta.LabelSelectorArgs(match_labels=labels), policy_types=["Ingress"], ingress=[]
            ),
            opts=child,
        )
        self.register_outputs({})
