"""The offline tooling: `gke-inference plan`, `diff`, `changed`, `migration` and their reports (no program imports it)."""
