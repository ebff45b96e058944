"""The Pod Security "restricted" contexts every workload the stack writes starts from, in one place, so the profile
the policy pack (`inf-k8s-no-privileged`, `inf-k8s-nonroot-readonly`) and checkov check cannot drift between engines.
Exceptions (the disaggregated JetStream server's root + capabilities) override at the container, by name, in their
own component."""

from __future__ import annotations

import pulumi_kubernetes as k8s


def restricted_pod(uid: int) -> k8s.core.v1.PodSecurityContextArgs:
    """Non-root as `uid`, the runtime's seccomp profile; fsGroup `uid` so mounted volumes (GCS FUSE, caches, disks)
    are group-owned by the user that reads them."""
    return k8s.core.v1.PodSecurityContextArgs(
        run_as_non_root=True,
        run_as_user=uid,
        run_as_group=uid,
        fs_group=uid,
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def restricted_container() -> k8s.core.v1.SecurityContextArgs:
    """No escalation, no capabilities, a read-only root filesystem (writable paths are emptyDir mounts)."""
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        run_as_non_root=True,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
    )
