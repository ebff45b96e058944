"""Run the real Pulumi program in-process under Pulumi's mock runtime and capture what it registers.

Nothing here is a copy of the programs: ``programs/platform`` and ``programs/serving`` run unchanged,
each as its own project and stack, fed the environment's stack file the way the engine feeds it
(structured values as JSON strings, secrets flagged). The platform's stack outputs answer the serving
program's StackReference, as the engine would read them from the platform stack. A monitor subclass
records each RegisterResource (and the StackReference's ReadResource) request as the engine would
receive it: type, name, parent, dependencies, options and the serialized inputs (engine property
names). Mocked outputs are deterministic, so the same stack file always yields the same capture.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import config as runtime_config
from pulumi.runtime import mocks
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config import StackConfig, load_config

PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
LAYERS = ("platform", "serving")
"""The two programs, in deployment order: each runs as the project gke-inference-<layer>."""
STACK_REFERENCE = "pulumi:pulumi:StackReference"
READ_OPTIONS: dict[str, Any] = {
    "protect": False,
    "retainOnDelete": False,
    "deleteBeforeReplace": False,
    "ignoreChanges": [],
    "replaceOnChanges": [],
    "additionalSecretOutputs": [],
}
"""A read resource (the StackReference) has no resource options: the defaults, as a registered one records them."""
SECRET = "[secret]"
UNKNOWN = "[unknown]"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


@dataclass(frozen=True)
class StackFile:
    """A ``Pulumi.<stack>.yaml`` file read as the engine would pass it to the program."""

    stack: str
    config: dict[str, Any]
    secret_keys: frozenset[str]
    secrets_provider: str | None = None
    """The file's `secretsprovider` (None when absent: a passphrase on a self-managed backend such as gs://)."""
    encrypted_key: bool = False
    """Whether the file holds `encryptedkey`, the data key Pulumi wraps with a KMS key (written by `stack init`)."""

    @classmethod
    def read(cls, path: Path) -> StackFile:
        name = path.name
        if not (name.startswith("Pulumi.") and name.endswith((".yaml", ".yml"))):
            raise ValueError(f"{path}: expected a file named Pulumi.<stack>.yaml")
        document = yaml.safe_load(path.read_text()) or {}
        raw = document.get("config") or {}
        config: dict[str, Any] = {}
        secret: set[str] = set()
        for key, value in raw.items():
            if isinstance(value, dict) and set(value) == {"secure"}:
                secret.add(key)
                value = SECRET  # the ciphertext is never decrypted or rendered
            config[key] = value
        provider = document.get("secretsprovider")
        return cls(
            stack=name[len("Pulumi.") :].rsplit(".", 1)[0],
            config=config,
            secret_keys=frozenset(secret),
            secrets_provider=str(provider) if provider else None,
            encrypted_key=bool(document.get("encryptedkey")),
        )

    def load(self) -> StackConfig:
        return load_config(self.config, stack=self.stack, secret_keys=self.secret_keys)

    def engine_config(self) -> dict[str, str]:
        """Config as the engine passes it: strings, structured values JSON-encoded."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.config.items()}


@dataclass
class Captured:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    dependencies: list[str]
    provider: str | None
    inputs: dict[str, Any]
    options: dict[str, Any]
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    """Input name -> URNs its value came from: how stack policies join a pool to its service account."""

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Captured:
        """A resource as a saved plan's resources.json holds it (secrets masked)."""
        return cls(
            urn=record["urn"],
            type=record["type"],
            name=record["name"],
            custom=record["custom"],
            parent=record["parent"],
            dependencies=record["dependencies"],
            provider=record["provider"],
            inputs=record["inputs"],
            options=record["options"],
            property_dependencies=record.get("propertyDependencies", {}),
        )

    @property
    def layer(self) -> str:
        """The stack it belongs to: 'platform' or 'serving' (from its URN's project)."""
        return self.urn.split("::")[1].removeprefix("gke-inference-")

    def as_json(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "layer": self.layer,
            "type": self.type,
            "name": self.name,
            "custom": self.custom,
            "parent": self.parent,
            "dependencies": self.dependencies,
            "provider": self.provider,
            "inputs": self.inputs,
            "options": self.options,
            "propertyDependencies": self.property_dependencies,
        }


def plain(value: Any) -> Any:
    """Engine wire values to plain JSON: secrets masked, refs as URNs, whole floats as ints."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return _masked(value.get("value"))
        if sig == _RESOURCE_SIG:
            return value.get("urn")
        if sig == _ASSET_SIG:  # a file's text, path or URI, without the wire signature
            return {k: v for k, v in sorted(value.items()) if k != _SIG_KEY}
        return {k: plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN_VALUE:
        return UNKNOWN
    return value


def _masked(value: Any) -> Any:
    """A secret's shape with every value masked: a Secret's `stringData` keeps its keys, so it still validates."""
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in sorted(value.items()) if k != _SIG_KEY}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return SECRET


def _provider_ref(ref: str) -> str | None:
    return ref.rsplit("::", 1)[0] if ref else None


class CapturingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, also recording every registration request in full, and the stack's outputs."""

    def __init__(self, fake: mocks.Mocks):
        super().__init__(fake)
        self.captured: list[Captured] = []
        self.stack_outputs: dict[str, Any] = {}

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)
        if request.type == STACK_REFERENCE:
            self.captured.append(
                Captured(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    custom=True,
                    parent=request.parent or None,
                    dependencies=sorted(set(request.dependencies)),
                    provider=None,
                    inputs={"name": request.id},
                    options=dict(READ_OPTIONS),
                )
            )
        return response

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        self.captured.append(
            Captured(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent or None,
                dependencies=sorted(set(request.dependencies)),
                property_dependencies={
                    key: sorted(set(deps.urns)) for key, deps in sorted(request.propertyDependencies.items()) if deps.urns
                },
                provider=_provider_ref(request.provider),
                inputs=plain(json_format.MessageToDict(request.object)),
                options={
                    "protect": bool(request.protect),
                    "retainOnDelete": bool(request.retainOnDelete),
                    "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                    "ignoreChanges": sorted(request.ignoreChanges),
                    "replaceOnChanges": sorted(request.replaceOnChanges),
                    "additionalSecretOutputs": sorted(request.additionalSecretOutputs),
                },
            )
        )
        return response


FAKE_PROJECT_NUMBER = "123456789012"
FAKE_CA_CERTIFICATE = "RkFLRS1DQQ=="
"""The cluster CA the fake API reports, for a created cluster and an existing one alike."""


def fake_dns_endpoint(project: str, location: str, name: str) -> str:
    """A cluster's DNS-based endpoint, deterministic per cluster, shaped as GKE's: gke-<id>.<location>.gke.goog."""
    digest = hashlib.sha256(f"{project}/{location}/{name}".encode()).hexdigest()[:32]
    return f"gke-{digest}.{location}.gke.goog"


class FakeCloud(mocks.Mocks):
    """Deterministic outputs: what the program reads back from GCP, with documentation-range IPs; a StackReference
    reads the outputs `stacks` holds for the stack it names."""

    def __init__(self, stacks: dict[str, dict[str, Any]] | None = None):
        self.stacks = stacks or {}

    def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ == STACK_REFERENCE:
            name = str(args.resource_id)
            if name not in self.stacks:
                raise ValueError(f"no plan of stack {name} to read outputs from")
            return name, {"name": name, "outputs": self.stacks[name], "secretOutputNames": ["kubeconfig"]}
        state = dict(args.inputs)
        if args.typ == "gcp:container/cluster:Cluster":
            endpoints = state.get("controlPlaneEndpointsConfig", {})
            state.update(
                endpoint="192.0.2.10",
                masterAuth={**state.get("masterAuth", {}), "clusterCaCertificate": FAKE_CA_CERTIFICATE},
                controlPlaneEndpointsConfig={
                    **endpoints,
                    "dnsEndpointConfig": {
                        **endpoints.get("dnsEndpointConfig", {}),
                        "endpoint": fake_dns_endpoint(
                            str(args.inputs.get("project")), str(args.inputs.get("location")), str(args.inputs.get("name"))
                        ),
                    },
                },
            )
        elif args.typ == "gcp:serviceaccount/account:Account":
            state["email"] = f"{args.inputs['accountId']}@{args.inputs.get('project', 'project')}.iam.gserviceaccount.com"
        elif args.typ == "gcp:storage/bucket:Bucket":
            state["url"] = f"gs://{args.inputs.get('name', args.name)}"
        state.setdefault("name", args.inputs.get("name", args.name))
        return f"{args.name}-id", state

    def call(self, args: mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "gcp:organizations/getProject:getProject":
            return {"number": FAKE_PROJECT_NUMBER, "projectId": args.args.get("projectId")}, []
        if args.token == "gcp:storage/getProjectServiceAccount:getProjectServiceAccount":
            return {"emailAddress": f"service-{FAKE_PROJECT_NUMBER}@gs-project-accounts.iam.gserviceaccount.com"}, []
        if args.token == "gcp:container/getCluster:getCluster":
            return {
                "name": args.args.get("name"),
                "endpoint": "192.0.2.20",
                "controlPlaneEndpointsConfigs": [
                    {
                        "dnsEndpointConfigs": [
                            {
                                "endpoint": fake_dns_endpoint(
                                    str(args.args.get("project")), str(args.args.get("location")), str(args.args.get("name"))
                                ),
                                "allowExternalTraffic": True,
                                "enableK8sCertsViaDns": False,
                                "enableK8sTokensViaDns": False,
                            }
                        ],
                        "ipEndpointsConfigs": [{"enabled": True}],
                    }
                ],
                "masterAuths": [
                    {
                        "clientCertificate": "",
                        "clientKey": "",
                        "clientCertificateConfigs": [],
                        "clusterCaCertificate": FAKE_CA_CERTIFICATE,
                    }
                ],
            }, []
        return {}, []


@dataclass
class Capture:
    stack: str
    config: StackConfig
    resources: list[Captured] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each layer's stack outputs (secrets in clear: never written out)."""


def execute(
    stack_file: StackFile,
    *,
    layer: str = "platform",
    preview: bool = False,
    monitor: CapturingMonitor | None = None,
) -> CapturingMonitor:
    """Run one layer's program under mocks exactly as the engine would; the monitor holds what it registered."""
    monitor = monitor or CapturingMonitor(FakeCloud())
    main = PROGRAMS / layer / "__main__.py"

    def run_main() -> None:
        runpy.run_path(str(main), run_name="__main__")

    def program() -> None:
        mocks.set_mocks(monitor.mocks, project=f"gke-inference-{layer}", stack=stack_file.stack, preview=preview, monitor=monitor)
        runtime_config.set_all_config(stack_file.engine_config(), sorted(stack_file.secret_keys))
        _sync_await(run_pulumi_func(run_main))
        # The root stack holds what the program exported; resolved, they are what a StackReference reads.
        exported = get_root_resource().outputs  # type: ignore[union-attr]
        resolved: Any = _sync_await(pulumi.Output.from_input(exported).future())
        monitor.stack_outputs = dict(resolved or {})

    # Pulumi keeps its runtime state in context variables: a fresh context isolates each run.
    contextvars.Context().run(program)
    return monitor


def execute_both(
    stack_file: StackFile,
    *,
    preview: bool = False,
    monitor: Callable[[FakeCloud], CapturingMonitor] = CapturingMonitor,
) -> tuple[CapturingMonitor, CapturingMonitor]:
    """The platform program, then the serving program reading the platform's outputs through its StackReference."""
    from infra.serving.stack import platform_stack_name

    platform = execute(stack_file, layer="platform", preview=preview, monitor=monitor(FakeCloud()))
    reference = platform_stack_name(stack_file.load())
    serving = execute(
        stack_file, layer="serving", preview=preview, monitor=monitor(FakeCloud({reference: platform.stack_outputs}))
    )
    return platform, serving


def run(
    stack_file: StackFile,
    *,
    preview: bool = False,
    layer: str | None = None,
    platform_outputs: dict[str, Any] | None = None,
) -> Capture:
    """Check the config (raises ConfigError, nothing registered), then run both programs under mocks: the union of
    what the platform and the serving stack register, each resource tagged with its layer. With `layer`, that one
    program alone: the serving program then reads `platform_outputs` (a saved platform plan's) as its reference."""
    checked = stack_file.load()
    if layer is None:
        monitors = dict(zip(LAYERS, execute_both(stack_file, preview=preview), strict=True))
    elif layer == "platform":
        monitors = {layer: execute(stack_file, layer=layer, preview=preview)}
    else:
        from infra.serving.stack import platform_stack_name

        if platform_outputs is None:
            raise ValueError("planning the serving layer alone needs the platform plan's outputs")
        fake = FakeCloud({platform_stack_name(checked): platform_outputs})
        monitors = {layer: execute(stack_file, layer=layer, preview=preview, monitor=CapturingMonitor(fake))}
    captured = [r for m in monitors.values() for r in m.captured]
    resources = sorted(captured, key=lambda r: (r.parent is not None, r.urn))
    return Capture(stack_file.stack, checked, resources, {name: m.stack_outputs for name, m in monitors.items()})
