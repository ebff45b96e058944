"""Entry point for `pulumi preview --policy-pack policies`: builds the pack and serves it (this blocks)."""

from pulumi_policy import PolicyPack

from policies.registry import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES)
