"""vLLM and Triton under mocks, loading and guarding the model: weights read-only from the bucket over GCS FUSE or
populated on Hyperdisk ML, the startup budget of the loading path, batch Jobs, the HF token and its download Jobs,
and pod security, each derived from config, catalog and sizing.

Engine flags, GPU strategies, ports, capacity and Triton are in test_vllm_serving.py; the stacks and shared helpers
in model_serving_helpers.py, their fixtures in conftest.py.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest
from conftest import BASE, mutate
from model_serving_helpers import (
    BUCKET_IAM,
    CASES,
    CONFIGS,
    DATA_SOURCE,
    JOB,
    NAMESPACE_TYPE,
    NETPOL,
    NS,
    ONLINE,
    PDB,
    POD_MONITORING,
    PVC,
    SECRET_TYPE,
    SERVICE_ACCOUNT,
    STORAGE_CLASS,
    TEST_STACK,
    TEST_STACK_FILE,
    TOKEN,
    Stack,
    engine_container,
    expected_startup,
    mount,
    mount_options,
    options,
    pod_templates,
    principal,
    selects,
    servers,
    serving_template,
    vllm_argv,
    volume,
)
from serving_helpers import HPA, SERVICE, containers, named
from test_config import problems
from test_platform import of_type

from components.model_server import GCSFUSE_CACHE_VOLUME, GCSFUSE_DRIVER
from components.weights_download import MAX_NAME, Model, job_name
from infra import sizing
from infra.catalog import Catalog
from infra.config import ConfigError, load_config
from infra.serving import models as model_serving
from infra.tooling.plan import SECRET

WRITE_ROLES = ("roles/storage.objectUser", "roles/storage.objectCreator", "roles/storage.objectAdmin", "roles/storage.admin")
READER_ROLE = "roles/storage.objectViewer"
DOWNLOADER = "model-downloader"
PLAINTEXT_REFUSED = f"{NS}:hf_token: a secret stored in plaintext (set it with `pulumi config set --secret`); expected a secure: value, got plaintext"
"""The loader's message for a plaintext token (as test_config.test_secret_in_plaintext_is_refused_and_never_echoed)."""


# ------------------------------------------------------------------------------------------------ 1. model loading


@pytest.mark.parametrize(("env", "name"), [(e, n) for e, n in CASES if CONFIGS[e].workloads[n].config.model_loading == "gcsfuse"])
def test_weights_come_read_only_from_the_model_bucket(stacks: dict[str, Stack], env: str, name: str) -> None:
    """GCS FUSE: read-only volume and mount of the stack's bucket limited to hf/<hf_id>; the sidecar requested; fsGroup
    set; the file cache (parallel downloads) in RAM on TPU, on Local SSD ephemeral storage where the GPU pool has it,
    none on a GPU pool without (it would fill the boot disk); a cache is bounded by the weights of one node."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    for template in pod_templates(stack.items, w).values():
        weights = volume(template, "weights")
        assert weights["csi"]["driver"] == GCSFUSE_DRIVER and weights["csi"]["readOnly"] is True
        assert weights["csi"]["volumeAttributes"]["bucketName"] == stack.cfg.bucket_name
        assert f"only-dir=hf/{w.model.hf_id}" in mount_options(weights)
        m = mount(engine_container(template, w), "weights")
        assert m["readOnly"] is True
        argv = vllm_argv(containers(template)["vllm"]) if w.config.engine == "vllm" else []
        if argv:  # what vLLM loads is what is mounted (`serve MODEL`, `run-batch --model=MODEL`)
            assert (argv[2] if argv[1] == "serve" else options(argv)["--model"]) == m["mountPath"]
        assert template["metadata"]["annotations"]["gke-gcsfuse/volumes"] == "true"
        assert template["spec"]["securityContext"]["fsGroup"]
        local_ssd = w.gpu_pool is not None and w.gpu_pool.config.local_ssd_count > 0
        names = {v["name"] for v in template["spec"]["volumes"]}
        if not (w.tpu_pools or local_ssd):
            assert GCSFUSE_CACHE_VOLUME not in names
            assert not any(o.startswith("file-cache:") for o in mount_options(weights))
            continue
        cache = volume(template, GCSFUSE_CACHE_VOLUME)["emptyDir"]
        assert cache.get("medium") == ("Memory" if w.tpu_pools else None)
        per_node = sizing.weight_bytes(w.model, w.config.weight_dtype) / model_serving.layout(w).nodes
        assert int(cache["sizeLimit"].removesuffix("Mi")) * sizing.MIB >= per_node
        assert f"file-cache:max-size-mb:{cache['sizeLimit'].removesuffix('Mi')}" in mount_options(weights)


def test_both_file_cache_media_are_exercised() -> None:
    """The cases above include a TPU server, a GPU pool without Local SSD and one with it."""
    kinds = {
        "tpu" if w.tpu_pools else ("ssd" if w.gpu_pool and w.gpu_pool.config.local_ssd_count else "ram")
        for cfg in CONFIGS.values()
        for w in servers(cfg).values()
        if w.config.model_loading == "gcsfuse"
    }
    assert kinds == {"tpu", "ssd", "ram"}


def test_hyperdisk_ml_weights_are_populated_from_the_bucket(stacks: dict[str, Stack]) -> None:
    """`disk`: a hyperdisk-ml StorageClass in the pool's zone, a GCPDataSource reading gs://<bucket>/hf/<hf_id>/ as the
    workload's account, a ReadOnlyMany claim of at least the weight bytes populated from it, mounted read-only."""
    stack = stacks[TEST_STACK]
    w = stack.cfg.workloads["disk"]
    assert w.gpu_pool is not None
    template = serving_template(stack.items, w)
    claim_name = volume(template, "weights")["persistentVolumeClaim"]["claimName"]
    assert volume(template, "weights")["persistentVolumeClaim"]["readOnly"] is True
    assert mount(containers(template)["vllm"], "weights")["readOnly"] is True
    assert GCSFUSE_CACHE_VOLUME not in {v["name"] for v in template["spec"]["volumes"]}
    claim = named(stack.items, PVC)[(w.config.namespace, claim_name)]["spec"]
    assert claim["accessModes"] == ["ReadOnlyMany"]
    size = claim["resources"]["requests"]["storage"]
    assert size.endswith("Gi") and int(size[:-2]) * sizing.GIB >= sizing.weight_bytes(w.model, w.config.weight_dtype)
    ref = claim["dataSourceRef"]
    source = named(stack.items, DATA_SOURCE)[(w.config.namespace, ref["name"])]
    assert (ref["apiGroup"], ref["kind"]) == (source["apiVersion"].split("/")[0], source["kind"])
    assert source["spec"]["cloudStorage"] == {
        "serviceAccountName": w.service_account,
        "uri": f"gs://{stack.cfg.bucket_name}/hf/{w.model.hf_id}/",
    }
    storage_class = named(stack.items, STORAGE_CLASS)[("", claim["storageClassName"])]
    assert storage_class["parameters"]["type"] == "hyperdisk-ml"
    # the disk is a copy of the bucket folder: it goes with its claim rather than being billed on (an API enum value)
    assert storage_class["reclaimPolicy"] == "Delete"
    ((term,),) = ([t["matchLabelExpressions"] for t in storage_class["allowedTopologies"]],)
    # the PD CSI driver's topology key, which pins the zonal disk to the pool's one zone
    assert term == [{"key": "topology.gke.io/zone", "values": list(w.gpu_pool.zones)}] and len(w.gpu_pool.zones) == 1


def test_hyperdisk_weights_on_a_multi_zone_pool_are_refused() -> None:
    """components/hyperdisk.py: 'The disk is zonal: the loader allows this path only for pools in one zone'. The
    StorageClass is pinned to the pool's first zone, so the pool's other zones can never run the server."""
    raw = mutate(BASE, f"{NS}:gpu_pools.l4.zones", ["us-east5-a", "us-east5-b"])
    raw = mutate(raw, f"{NS}:workloads.small.model_loading", "hyperdisk-ml")
    with pytest.raises(ConfigError, match=r"workloads\.small\.model_loading: a Hyperdisk ML volume is zonal"):
        load_config(raw, stack="t")


# ------------------------------------------------------------------------------------------------ 2. startup


@pytest.mark.parametrize(("env", "name"), ONLINE)
def test_startup_budget_is_the_load_path_estimate(stacks: dict[str, Stack], catalog: Catalog, env: str, name: str) -> None:
    """Every serving pod's startup probe allows the catalog estimate over the workload's loading path and nodes; the
    summary reports the same budget and path."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    want = expected_startup(catalog, w)
    assert want == model_serving.startup(catalog, w)
    for template in pod_templates(stack.items, w).values():
        probe = engine_container(template, w)["startupProbe"]
        assert probe["periodSeconds"] == sizing.PROBE_PERIOD_SECONDS
        assert probe["failureThreshold"] * probe["periodSeconds"] == want.budget_s >= want.predicted_s
    (summary,) = (s for s in stack.summary["workloads"] if s["name"] == name)
    assert summary["startup"]["probe_budget_s"] == probe["failureThreshold"] * probe["periodSeconds"]
    assert summary["startup"]["path"] == w.config.model_loading


def test_summary_json_on_disk_reports_the_manifests_budget(written: tuple[Path, Stack]) -> None:
    """summary.json as `plan` writes it: probe_budget_s = failureThreshold x periodSeconds of the written manifests."""
    folder, stack = written
    summary = json.loads((folder / "summary.json").read_text())
    budgets = {s["name"]: s["startup"]["probe_budget_s"] for s in summary["workloads"]}
    for name, w in servers(stack.cfg).items():
        probe = engine_container(serving_template(stack.items, w), w)["startupProbe"]
        assert budgets[name] == probe["failureThreshold"] * probe["periodSeconds"]


# ------------------------------------------------------------------------------------------------ 3. batch


def test_batch_job_reads_and_writes_its_own_prefix(stacks: dict[str, Stack]) -> None:
    """dev llama-8b-batch: an Indexed Job (completions = parallelism) with the config's retries and deadline, `vllm
    run-batch` over per-index files in the results mount, which is a read-write FUSE mount of batch/<workload>; no
    probes, no Service, HPA, PodMonitoring or PDB; a NetworkPolicy admitting nothing; and the Job's account may write
    exactly that prefix."""
    stack = stacks["dev"]
    w = stack.cfg.workloads["llama-8b-batch"]
    batch = w.config.batch
    assert batch is not None
    key = (w.config.namespace, w.name)
    job = named(stack.items, JOB)[key]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == batch.parallelism
    assert job["backoffLimit"] == batch.backoff_limit
    assert job["activeDeadlineSeconds"] == math.ceil(batch.deadline_hours * 3600)
    template = job["template"]
    assert template["spec"]["restartPolicy"] == "Never"
    c = containers(template)["vllm"]
    assert c["command"] == ["vllm", "run-batch"]
    assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(c)
    results = mount(c, "results")
    assert not results.get("readOnly")
    opts = options(vllm_argv(c))
    for flag, file in (("--input-file", batch.input), ("--output-file", batch.output)):
        assert opts[flag] == f"{results['mountPath']}/{file.replace('{index}', '$(JOB_COMPLETION_INDEX)')}"
    assert opts["--model"] == mount(c, "weights")["mountPath"]
    vol = volume(template, "results")["csi"]
    assert vol["driver"] == GCSFUSE_DRIVER and vol["readOnly"] is False
    assert vol["volumeAttributes"]["bucketName"] == stack.cfg.bucket_name
    assert f"only-dir=batch/{w.name}" in vol["volumeAttributes"]["mountOptions"].split(",")
    for type_ in (SERVICE, HPA, POD_MONITORING, PDB):
        assert key not in named(stack.items, type_), type_
    policy = named(stack.items, NETPOL)[key]["spec"]
    assert selects(policy["podSelector"]["matchLabels"], template)
    assert policy["policyTypes"] == ["Ingress"] and not policy.get("ingress")
    member = principal(stack.cfg, w.config.namespace, w.service_account)
    writes = [
        r["inputs"]
        for r in of_type(stack.items, BUCKET_IAM)
        if r["inputs"]["member"] == member and r["inputs"]["role"] in WRITE_ROLES
    ]
    assert writes, f"no IAM role lets {w.service_account} write batch/{w.name}/ of {stack.cfg.bucket_name}"
    for grant in writes:
        assert grant["bucket"] == stack.cfg.bucket_name
        assert grant["condition"]["expression"] == (
            f'resource.name.startsWith("projects/_/buckets/{stack.cfg.bucket_name}/objects/batch/{w.name}/")'
        )


# ------------------------------------------------------------------------------------------------ 4. the HF token


def test_plaintext_token_is_refused() -> None:
    assert problems(mutate(BASE, f"{NS}:hf_token", TOKEN)) == [PLAINTEXT_REFUSED]


def test_token_is_never_written_in_plaintext(written: tuple[Path, Stack]) -> None:
    """The program is handed the token in clear (as the engine hands it decrypted secret config); no file `plan`
    writes contains it, and the Secret keeps its shape with the value masked."""
    folder, stack = written
    assert TOKEN in TEST_STACK_FILE.engine_config().values()
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files and all(TOKEN not in p.read_text() for p in files)
    assert all(TOKEN not in json.dumps(r) for r in stack.items)
    namespaces = {w.config.namespace for w in servers(stack.cfg).values()}
    secrets = named(stack.items, SECRET_TYPE)
    for namespace in namespaces:
        secret = secrets[(namespace, "hf-token")]
        assert secret["stringData"] == {"token": SECRET}


def test_download_jobs_mount_the_token_and_alone_write_the_weights(stacks: dict[str, Stack]) -> None:
    """One download Job per model a namespace serves, run as model-downloader, writing where the servers read
    (hf/<hf_id>); the token is a read-only secret file, never an environment variable; model-downloader is the only
    unconditional writer of the model bucket, and every serving account reads it only."""
    stack = stacks[TEST_STACK]
    cfg = stack.cfg
    jobs = {k: v for k, v in named(stack.items, JOB).items() if k[1].startswith("download-")}
    by_namespace: dict[str, set[str]] = {}
    for w in servers(cfg).values():
        by_namespace.setdefault(w.config.namespace, set()).add(w.model.hf_id)
    assert {(ns, len(ids)) for ns, ids in by_namespace.items()} == {
        (ns, sum(1 for k in jobs if k[0] == ns)) for ns in by_namespace
    }
    written_dirs = set()
    for (namespace, _), job in jobs.items():
        spec = job["spec"]["template"]["spec"]
        # a failed download is retried in a new pod, counted against the Job's backoffLimit (a Job allows only
        # Never and OnFailure)
        assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1
        assert spec["serviceAccountName"] == DOWNLOADER
        assert (namespace, DOWNLOADER) in named(stack.items, SERVICE_ACCOUNT)
        (c,) = spec["containers"]
        token = next(v for v in spec["volumes"] if v.get("secret"))
        assert token["secret"]["secretName"] == "hf-token"
        assert mount(c, token["name"])["readOnly"] is True
        for env in c.get("env", []):
            assert "valueFrom" not in env and "TOKEN" not in env["name"].upper()
        bucket = next(v for v in spec["volumes"] if v.get("csi"))
        assert bucket["csi"]["volumeAttributes"]["bucketName"] == cfg.bucket_name
        argv = shlex.split(c["args"][0])
        local_dir = argv[argv.index("--local-dir") + 1]
        root = mount(c, bucket["name"])["mountPath"]
        assert local_dir.startswith(f"{root}/")
        hf_id = argv[argv.index("download") + 1]
        assert local_dir == f"{root}/hf/{hf_id}"
        written_dirs.add((namespace, hf_id))
    assert written_dirs == {(ns, i) for ns, ids in by_namespace.items() for i in ids}
    grants = [r["inputs"] for r in of_type(stack.items, BUCKET_IAM) if r["inputs"]["bucket"] == cfg.bucket_name]
    unconditional_writers = {g["member"] for g in grants if g["role"] in WRITE_ROLES and not g.get("condition")}
    assert unconditional_writers == {principal(cfg, ns, DOWNLOADER) for ns in by_namespace}
    assert {g["role"] for g in grants if g["member"] == principal(cfg, "inference", DOWNLOADER)} == {"roles/storage.objectUser"}
    for w in servers(cfg).values():
        roles = {g["role"] for g in grants if g["member"] == principal(cfg, w.config.namespace, w.service_account)}
        assert roles == {READER_ROLE}, w.name


# ------------------------------------------------------------------------------------------------ 5. security


@pytest.mark.parametrize(("env", "name"), CASES)
def test_every_server_pod_is_restricted_and_guaranteed(stacks: dict[str, Stack], env: str, name: str) -> None:
    """Non-root, read-only root, no escalation, no capabilities, RuntimeDefault seccomp, no API token, the workload's
    own account; requests = limits for CPU, memory and the accelerator; /dev/shm in RAM with a size limit; a PDB
    (servers) and a NetworkPolicy select the pods; the namespace enforces Pod Security `restricted`."""
    stack = stacks[env]
    w = stack.cfg.workloads[name]
    namespace = w.config.namespace
    accelerator = "google.com/tpu" if w.tpu_pools else "nvidia.com/gpu"
    for template in pod_templates(stack.items, w).values():
        spec = template["spec"]
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["securityContext"]["runAsUser"] >= 10000
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == w.service_account
        assert (namespace, w.service_account) in named(stack.items, SERVICE_ACCOUNT)
        c = engine_container(template, w)
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert c["resources"]["requests"] == c["resources"]["limits"]
        assert {"cpu", "memory", accelerator} <= set(c["resources"]["limits"])
        shm = volume(template, {m["mountPath"]: m["name"] for m in c["volumeMounts"]}["/dev/shm"])["emptyDir"]
        assert shm["medium"] == "Memory" and shm["sizeLimit"]
        if w.config.batch is None:
            assert selects(named(stack.items, PDB)[(namespace, w.name)]["spec"]["selector"]["matchLabels"], template)
        assert selects(named(stack.items, NETPOL)[(namespace, w.name)]["spec"]["podSelector"]["matchLabels"], template)
    ns = named(stack.items, NAMESPACE_TYPE)[("", namespace)]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_download_jobs_of_two_orgs_repositories_of_one_name_do_not_collide() -> None:
    """Job names come from the whole Hugging Face id: a DNS label, unique per model, also past the length limit."""
    ids = ["meta-llama/Llama-3.1-8B-Instruct", "someone/Llama-3.1-8B-Instruct", "org/" + "x" * 80, "org/" + "x" * 81]
    names = [job_name(Model(i, f"hf/{i}")) for i in ids]
    assert len(set(names)) == len(names)
    assert all(len(n) <= MAX_NAME and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) for n in names)
