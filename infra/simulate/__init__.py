"""Autoscaling what-if simulation: the Kubernetes HPA algorithm replayed offline against synthetic or recorded traffic."""
