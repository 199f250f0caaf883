"""The OCI distribution client: talking to registries (auth, transport), and pull/push on top of it.

    errors       RegistryError and its kinds
    settings     per-registry settings: mirrors, insecure hosts, extra CAs (registries.toml)
    credentials  ~/.docker/config.json: auths, credsStore, credHelpers; login/logout
    auth         WWW-Authenticate challenges: Bearer token flow and HTTP basic
    transport    one pooled HTTP client per registry, retries with backoff, scheme choice
    client       Registry: the distribution API (manifests, blobs, uploads)
"""
