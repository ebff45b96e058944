"""The platform program's composition (programs/platform runs it): network, cluster, pools, buckets, IAM, shared APIs."""
