"""pybuild: a daemonless Dockerfile builder, image store and container runtime."""

__version__ = "0.1.0"
