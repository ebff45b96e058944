"""CrossGuard policy pack of the gke-inference platform (rules in importable modules; see README.md)."""
