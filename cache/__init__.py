"""Content-addressed blob/layer store and build-cache index.

This package knows nothing of Dockerfiles and never imports ``builder``.
"""
