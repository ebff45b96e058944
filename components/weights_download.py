"""Hugging Face → model bucket: one Job per model, run by an identity of its own (seed 003's download step).

The token comes from Pulumi secret config into a Kubernetes Secret (a secret output end to end: it is
encrypted in state and masked in `plan`), is mounted as a file rather than an environment variable,
and only the downloader's account can write the bucket: serving accounts stay read-only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.identity import KubernetesAccount, grant_bucket_role
from components.model_server import GCSFUSE_DRIVER, RUN_AS, checkov_annotations
from components.pod_security import restricted_container, restricted_pod

ACCOUNT = "model-downloader"
MAX_NAME = 63
"""A Job's name is a DNS label (its pods' names and labels derive from it)."""
WRITER_ROLE = "roles/storage.objectUser"
TOKEN_DIR = "/var/run/secrets/huggingface"
TOKEN_SECRET = "hf-token"


@dataclass(frozen=True)
class Model:
    hf_id: str
    prefix: str
    """Folder in the bucket the weights land in (the servers' GCS FUSE `only-dir`)."""


@dataclass(frozen=True)
class WeightsDownloadArgs:
    project: str
    namespace: str
    bucket: str
    image: str
    token: pulumi.Input[str]
    models: tuple[Model, ...]
    checkov_skips: dict[str, str]


def job_name(model: Model) -> str:
    """One Job per model in the namespace: `download-<org>-<repo>` from the Hugging Face id (two orgs may publish
    repositories of one name), a DNS label; a longer one keeps its start and ends in a hash of the whole id."""
    label = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", f"download-{model.hf_id}".lower())).strip("-")
    if len(label) <= MAX_NAME:
        return label
    digest = hashlib.sha256(model.hf_id.encode()).hexdigest()[:8]
    return f"{label[: MAX_NAME - len(digest) - 1].rstrip('-')}-{digest}"


def download_script(model: Model) -> str:
    """`hf download` (huggingface_hub >= 1.x, in the vLLM image) straight into the FUSE-mounted folder."""
    return (
        f'HF_TOKEN="$(cat {TOKEN_DIR}/token)" exec hf download {model.hf_id} '
        f"--local-dir /bucket/{model.prefix} --exclude 'original/*' --max-workers 8"
    )


class WeightsDownload(pulumi.ComponentResource):
    def __init__(self, name: str, args: WeightsDownloadArgs, gcp_opts: pulumi.ResourceOptions, opts: pulumi.ResourceOptions):
        # The writer's IAM binding is a child too: it goes through gcp_opts' provider, as the Kubernetes objects go
        # through opts', never through an ambient default one.
        super().__init__("gke-inference:serving:WeightsDownload", name, None, pulumi.ResourceOptions.merge(gcp_opts, opts))
        core, meta = k8s.core.v1, k8s.meta.v1
        child = pulumi.ResourceOptions(parent=self)
        account = core.ServiceAccount(
            f"{name}-sa",
            metadata=meta.ObjectMetaArgs(name=ACCOUNT, namespace=args.namespace),
            automount_service_account_token=False,
            opts=child,
        )
        grant_bucket_role(
            f"{name}-writer", args.bucket, WRITER_ROLE, (KubernetesAccount(args.namespace, ACCOUNT),), args.project, self
        )
        secret = core.Secret(
            f"{name}-hf-token",
            metadata=meta.ObjectMetaArgs(name=TOKEN_SECRET, namespace=args.namespace),
            type="Opaque",
            string_data={"token": pulumi.Output.secret(args.token)},
            opts=child,
        )
        skips = checkov_annotations(args.checkov_skips)
        for model in args.models:
            job = job_name(model)
            pod_annotations = {"gke-gcsfuse/volumes": "true", "gke-gcsfuse/ephemeral-storage-limit": "0", **skips}
            k8s.batch.v1.Job(
                f"{name}-{job}",
                metadata=meta.ObjectMetaArgs(name=job, namespace=args.namespace, annotations=skips or None),
                spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=3,
                    ttl_seconds_after_finished=86400,
                    template=core.PodTemplateSpecArgs(
                        metadata=meta.ObjectMetaArgs(labels={"app.kubernetes.io/name": job}, annotations=pod_annotations),
                        spec=core.PodSpecArgs(
                            service_account_name=ACCOUNT,
                            automount_service_account_token=False,
                            restart_policy="Never",
                            security_context=restricted_pod(RUN_AS),
                            containers=[
                                core.ContainerArgs(
                                    name="download",
                                    image=args.image,
                                    image_pull_policy="IfNotPresent",
                                    command=["sh", "-c"],
                                    args=[download_script(model)],
                                    env=[
                                        core.EnvVarArgs(name="HOME", value="/tmp"),
                                        core.EnvVarArgs(name="HF_HOME", value="/tmp/hf"),
                                    ],
                                    resources=core.ResourceRequirementsArgs(
                                        requests={"cpu": "2", "memory": "8Gi"}, limits={"cpu": "2", "memory": "8Gi"}
                                    ),
                                    security_context=restricted_container(),
                                    volume_mounts=[
                                        core.VolumeMountArgs(name="tmp", mount_path="/tmp"),
                                        core.VolumeMountArgs(name="token", mount_path=TOKEN_DIR, read_only=True),
                                        core.VolumeMountArgs(name="bucket", mount_path="/bucket"),
                                    ],
                                )
                            ],
                            volumes=[
                                core.VolumeArgs(name="tmp", empty_dir=core.EmptyDirVolumeSourceArgs()),
                                core.VolumeArgs(name="token", secret=core.SecretVolumeSourceArgs(secret_name=TOKEN_SECRET)),
                                core.VolumeArgs(
                                    name="bucket",
                                    csi=core.CSIVolumeSourceArgs(
                                        driver=GCSFUSE_DRIVER,
                                        volume_attributes={"bucketName": args.bucket, "mountOptions": "implicit-dirs"},
                                    ),
                                ),
                            ],
                        ),
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[account, secret]),
            )
        self.register_outputs({})
