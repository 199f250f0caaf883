"""The embedded container runtime: container records, the per-container monitor, lifecycle, volumes, networks."""
