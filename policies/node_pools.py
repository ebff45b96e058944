"""TPU and GPU node pools: shapes the GKE API only rejects at `up`, checked from the catalog (bad inputs 1-5, 11-12)."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs, Severity

from infra.catalog import load as load_catalog
from policies.base import Config, Meta, as_int, get, items, listed, resource_policy
from policies.inventory import NODE_POOL, Pool, pool_name, tpu_generation


def _pool(args: ResourceValidationArgs) -> Pool:
    return Pool(pool_name(args.name, args.props), args.props)


def _tpu_shape(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    pool = _pool(args)
    gen = tpu_generation(load_catalog(), pool.machine_type)
    if gen is None:
        return
    if items(get(args.props, "nodeConfig.guestAccelerators")):
        yield f"TPU machine type {pool.machine_type} takes no nodeConfig.guestAccelerators"
    topology = get(args.props, "placementPolicy.tpuTopology")
    if isinstance(topology, str) and topology:
        if topology not in gen.shapes:
            yield f"placementPolicy.tpuTopology {topology} is not a {gen.name} topology; expected one of {listed(gen.shapes)}"
            return
        if pool.machine_type not in gen.shapes[topology]:
            yield f"topology {topology} needs machine type {' or '.join(gen.shapes[topology])}; got {pool.machine_type}"
            return
    slice_ = pool.tpu
    if slice_ is None:
        return
    if slice_.multi_host and get(args.props, "placementPolicy.type") != "COMPACT":
        yield f"a multi-host {slice_.shape} slice needs placementPolicy.type COMPACT"
    if slice_.multi_host and len(pool.zones) != 1:
        yield f"a multi-host slice lives in one zone; nodeLocations has {len(pool.zones)}"
    for zone in pool.zones:
        if zone not in gen.zones:
            yield f"zone {zone} does not offer {gen.name}; expected one of {listed(gen.zones)}"
    vms = slice_.vms
    counts = {
        "nodeCount": get(args.props, "nodeCount"),
        "autoscaling.minNodeCount": get(args.props, "autoscaling.minNodeCount"),
        "autoscaling.maxNodeCount": get(args.props, "autoscaling.maxNodeCount"),
        "autoscaling.totalMaxNodeCount": get(args.props, "autoscaling.totalMaxNodeCount"),
    }
    for key, value in counts.items():
        count = as_int(value)
        if count is not None and count % vms:
            yield f"{key} {count} is not a whole number of {slice_.topology} slices ({vms} VMs each)"
    if slice_.multi_host and as_int(counts["nodeCount"]) not in (None, vms):
        yield f"nodeCount {as_int(counts['nodeCount'])} but one node pool holds exactly one {slice_.topology} slice ({vms} VMs)"
    if get(args.props, "autoscaling.locationPolicy") == "BALANCED":
        yield "autoscaling.locationPolicy BALANCED spreads a slice's VMs over zones; expected ANY"


def _gpu_shape(args: ResourceValidationArgs, cfg: Config) -> Iterator[str]:
    pool = _pool(args)
    accelerators = items(get(args.props, "nodeConfig.guestAccelerators"))
    gpu = pool.gpu
    if gpu is None:
        if accelerators:
            yield f"guestAccelerators type {accelerators[0].get('type')} is not a catalog GPU"
        return
    if not accelerators:
        yield f"nodeConfig.guestAccelerators is not set for {gpu.gke_accelerator} on {pool.machine_type}"
        return
    declared = accelerators[0].get("type")
    if declared != gpu.gke_accelerator:
        yield f"guestAccelerators type {declared} does not fit {pool.machine_type}, which carries {gpu.gke_accelerator}"
    if pool.machine_type not in gpu.machine_types:
        yield f"{gpu.gke_accelerator} cannot attach to {pool.machine_type}; expected one of {listed(gpu.machine_types)}"
    else:
        count, per_vm = as_int(accelerators[0].get("count")), gpu.machine_types[pool.machine_type]
        if count != per_vm:
            yield f"guestAccelerators count {count} but {pool.machine_type} carries {per_vm} {gpu.gke_accelerator}"
    if not pool.zones:
        yield f"nodeLocations is not set: no region offers {gpu.gke_accelerator} in every zone"
    for zone in pool.zones:
        if zone not in gpu.zones:
            yield f"zone {zone} does not offer {gpu.gke_accelerator} (catalog {load_catalog().as_of})"
    version = get(accelerators[0], "gpuDriverInstallationConfig.gpuDriverVersion")
    if version in (None, "INSTALLATION_DISABLED", "GPU_DRIVER_VERSION_UNSPECIFIED"):
        yield f"gpuDriverInstallationConfig.gpuDriverVersion is {version or 'unset'}: GKE will not install the NVIDIA driver"


POLICIES = [
    resource_policy(
        Meta(
            "inf-tpu-pool-shape",
            "A TPU node pool forms whole slices the catalog knows: topology, machine type, VMs, one zone, COMPACT placement.",
            Severity.HIGH,
            "Set tpu_pools.<name>.topology and machine_type from infra/catalog/accelerators.yaml; node counts and "
            "autoscaling are in whole slices (components derive them from the catalog).",
        ),
        [NODE_POOL],
        _tpu_shape,
    ),
    resource_policy(
        Meta(
            "inf-gpu-pool-shape",
            "A GPU node pool attaches the GPU its machine type carries, in zones that offer it, with the driver installed.",
            Severity.HIGH,
            "Pick gpu_pools.<name>.machine_type among the GPU's machine types and zones in infra/catalog/accelerators.yaml; "
            "keep driver_version set.",
        ),
        [NODE_POOL],
        _gpu_shape,
    ),
]
