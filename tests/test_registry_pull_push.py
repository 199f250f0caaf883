"""``pybuild pull`` / ``push`` and the build's registry paths against a real registry (docker-registry).

What the registry issue asks to see: build, push, remove, pull, run with equal digests; skopeo reads
what pybuild pushed and pybuild reads what skopeo pushed; pull by digest; an index resolved to this
machine's platform or ``--platform`` (and a clear error naming the platforms when it has none for
us); FROM of an image missing from the store pulls it; ``--pull`` follows a moved tag; ``build
--push``; errors that name registry, repository and tag; a failed pull stores nothing; cross-repo
mounts and chunked uploads.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import subprocess
from pathlib import Path

import pytest

from image_fixtures import fails, ok, pb
from registry_fixtures import isolated_user_env, skopeo_copy, unique_repo



@pytest.fixture
def env(tmp_path):
    return isolated_user_env(tmp_path)


def run(root, *args, env):
    return pb(root, *args, env=env)


def store_of(root):
    from cache import Store

    return Store(root, sweep=False)


def skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def remote_digest(ref: str) -> str:
    return json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ref}"))["Digest"]


def pushed_digest(stdout: str, tag: str) -> str:
    found = re.findall(rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: (\d+)$", stdout, re.MULTILINE)
    assert len(found) == 1, stdout
    return found[0][0]


def context(path: Path, dockerfile: str, files: dict | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (path / name).write_text(text)
    return path


@pytest.fixture
def root_with_busybox(tmp_path, busybox_tar, env):
    root = tmp_path / "root"
    ok(run(root, "import", str(busybox_tar), "busybox:latest", env=env))
    return root


# ----------------------------------------------------------------------------------------------
# round trips


def test_build_push_remove_pull_run_keeps_the_digest(tmp_path, registry, root_with_busybox, env):
    root = root_with_busybox
    name = f"{registry.host}/{unique_repo('app')}:1"
    ctx = context(tmp_path / "ctx", "FROM busybox\nRUN echo hello > /hello\nCOPY a.txt /a.txt\n", {"a.txt": "A\n"})
    image_id = ok(run(root, "build", "-q", "-t", name, str(ctx), env=env)).strip()
    out = ok(run(root, "push", name, env=env))
    assert out.startswith(f"The push refers to repository [{name.rsplit(':', 1)[0]}]\n"), out
    digest = pushed_digest(out, "1")
    assert remote_digest(name) == digest
    inspect = json.loads(ok(run(root, "inspect", name, env=env)))[0]
    assert inspect["RepoDigests"] == [f"{name.rsplit(':', 1)[0]}@{digest}"]

    ok(run(root, "rmi", name, "busybox", env=env))
    out = ok(run(root, "pull", name, env=env))
    assert out.splitlines()[-1] == name, out
    assert f"Digest: {digest}" in out and f"Status: Downloaded newer image for {name}" in out
    assert ok(run(root, "images", "-q", "--no-trunc", name, env=env)).strip() == image_id
    assert ok(run(root, "run", "--rm", "--network", "none", name, "cat", "/hello", "/a.txt", env=env)) == "hello\nA\n"
    # a pulled image goes back byte for byte: same manifest, same digest, nothing uploaded
    again = ok(run(root, "push", name, env=env))
    assert pushed_digest(again, "1") == digest
    assert "Pushed" not in again and "Layer already exists" in again
    assert store_of(root).check() == ()


def test_pull_twice_is_up_to_date_and_downloads_nothing(tmp_path, registry_busybox, env):
    root = tmp_path / "root"
    first = ok(run(root, "pull", registry_busybox, env=env))
    assert "Pull complete" in first and "Status: Downloaded newer image" in first
    second = ok(run(root, "pull", registry_busybox, env=env))
    assert "Pull complete" not in second and "Already exists" in second
    assert f"Status: Image is up to date for {registry_busybox}" in second


def test_skopeo_copies_what_pybuild_pushed(tmp_path, registry, root_with_busybox, env):
    root = root_with_busybox
    name = f"{registry.host}/{unique_repo('forskopeo')}:v2"
    ctx = context(tmp_path / "ctx", "FROM busybox\nRUN mkdir -p /data && echo x > /data/x\n")
    image_id = ok(run(root, "build", "-q", "-t", name, "--push", str(ctx), env=env)).strip()
    layout = tmp_path / "layout"
    skopeo_copy(f"docker://{name}", f"oci:{layout}:v2", tls_verify=False)
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    assert manifest_digest == remote_digest(name)
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest[7:]).read_text())
    assert manifest["config"]["digest"] == image_id
    assert all(l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip" for l in manifest["layers"])
    store = store_of(root)
    record = store.get_image(image_id)
    for layer, diff_id in zip(manifest["layers"], record.layers):
        blob = (layout / "blobs/sha256" / layer["digest"][7:]).read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
        assert store.get_layer(diff_id).blobs["gzip"].digest == layer["digest"]   # the blob we keep is the one sent


def test_pybuild_pulls_what_skopeo_pushed(tmp_path, registry_busybox, busybox_tar, env):
    plain = tmp_path / "plain"
    busybox_id = ok(run(plain, "import", str(busybox_tar), "busybox:latest", env=env)).strip()
    root = tmp_path / "root"
    assert ok(run(root, "pull", "-q", registry_busybox, env=env)).strip() == registry_busybox
    assert ok(run(root, "images", "-q", "--no-trunc", registry_busybox, env=env)).strip() == busybox_id
    assert ok(run(root, "run", "--rm", "--network", "none", registry_busybox, "echo", "hi", env=env)) == "hi\n"
    digest = remote_digest(registry_busybox)
    inspect = json.loads(ok(run(root, "inspect", registry_busybox, env=env)))[0]
    assert inspect["RepoDigests"] == [f"{registry_busybox.rsplit(':', 1)[0]}@{digest}"]
    table = ok(run(root, "images", "--digests", env=env))
    assert digest in table
    # the manifest is kept as the registry served it
    store = store_of(root)
    record = store.get_image(busybox_id)
    assert record.manifest.digest == digest
    assert record.meta["source"] == "registry"
    assert store.check() == ()


def test_pull_by_digest(tmp_path, registry_busybox, env):
    root = tmp_path / "root"
    repo = registry_busybox.rsplit(":", 1)[0]
    digest = remote_digest(registry_busybox)
    pinned = f"{repo}@{digest}"
    out = ok(run(root, "pull", pinned, env=env))
    assert out.splitlines()[-1] == pinned
    assert ok(run(root, "run", "--rm", "--network", "none", pinned, "echo", "pinned", env=env)) == "pinned\n"
    assert json.loads(ok(run(root, "inspect", pinned, env=env)))[0]["RepoTags"] == []   # a digest pull tags nothing
    wrong = f"{repo}@sha256:{'0' * 64}"
    err = fails(run(root, "pull", wrong, env=env))
    assert f"{repo}@sha256:{'0' * 64}" in err


# ----------------------------------------------------------------------------------------------
# multi-platform indexes (made by hand through the client)


def _client(host):
    from builder.registry.client import Registry

    return Registry.for_host(host)


def _put_variant(reg, source_repo: str, repo: str, arch: str, variant: str = "") -> tuple[str, int, str]:
    """busybox from ``source_repo`` with its config saying ``arch``: (manifest digest, size, config digest)."""
    fetched = reg.get_manifest(source_repo, "latest")
    manifest = json.loads(fetched.data)
    config = json.loads(reg.fetch_blob(source_repo, manifest["config"]["digest"]))
    config["architecture"] = arch
    if variant:
        config["variant"] = variant
    data = json.dumps(config, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    reg.upload_blob(repo, digest, len(data), lambda offset: io.BytesIO(data[offset:]))
    for layer in manifest["layers"]:
        assert reg.mount_blob(repo, layer["digest"], source_repo)
    manifest["config"] = {**manifest["config"], "digest": digest, "size": len(data)}
    body = json.dumps(manifest, separators=(",", ":")).encode()
    media_type = manifest.get("mediaType") or fetched.media_type
    return reg.put_manifest(repo, "sha256:" + hashlib.sha256(body).hexdigest(), body, media_type), len(body), digest


def _put_index(reg, repo: str, tag: str, entries) -> str:
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": d, "size": s,
         "platform": {"os": "linux", "architecture": a, **({"variant": v} if v else {})}}
        for d, s, a, v in entries]}
    body = json.dumps(index).encode()
    return reg.put_manifest(repo, tag, body, "application/vnd.oci.image.index.v1+json")


@pytest.fixture(scope="module")
def multi(registry, registry_busybox):
    """A two-platform index (this machine's, and arm64 or amd64) and an index for neither."""
    from builder.image.platform import host_platform

    host = host_platform()
    other = "arm64" if host.architecture != "arm64" else "amd64"
    reg = _client(registry.host)
    repo = unique_repo("multi")
    native = _put_variant(reg, "busybox", repo, host.architecture, host.variant)
    foreign = _put_variant(reg, "busybox", repo, other)
    ppc = _put_variant(reg, "busybox", repo, "ppc64le")
    s390x = _put_variant(reg, "busybox", repo, "s390x")
    index = _put_index(reg, repo, "both", [(foreign[0], foreign[1], other, ""),
                                           (native[0], native[1], host.architecture, host.variant)])
    _put_index(reg, repo, "neither", [(ppc[0], ppc[1], "ppc64le", ""), (s390x[0], s390x[1], "s390x", "")])
    reg.put_manifest(repo, "foreign", *_manifest_of(reg, repo, foreign[0]))
    return {"repo": f"{registry.host}/{repo}", "native": native, "foreign": foreign, "other": other,
            "index": index}


def _manifest_of(reg, repo, digest):
    fetched = reg.get_manifest(repo, digest)
    return fetched.data, fetched.media_type


def test_an_index_resolves_to_this_machines_platform(tmp_path, multi, env):
    root = tmp_path / "root"
    name = f"{multi['repo']}:both"
    out = ok(run(root, "pull", name, env=env))
    assert f"Digest: {multi['index']}" in out          # the index's digest, as docker shows it
    inspect = json.loads(ok(run(root, "inspect", name, env=env)))[0]
    assert inspect["Id"] == multi["native"][2]
    assert inspect["RepoDigests"] == [f"{multi['repo']}@{multi['index']}"]
    assert ok(run(root, "run", "--rm", "--network", "none", name, "echo", "native", env=env)) == "native\n"
    # the pinned index digest finds the image too
    assert json.loads(ok(run(root, "inspect", f"{multi['repo']}@{multi['index']}", env=env)))[0]["Id"] == \
        multi["native"][2]


def test_platform_chooses_another_entry(tmp_path, multi, env):
    root = tmp_path / "root"
    name = f"{multi['repo']}:both"
    ok(run(root, "pull", "--platform", f"linux/{multi['other']}", name, env=env))
    inspect = json.loads(ok(run(root, "inspect", name, env=env)))[0]
    assert inspect["Id"] == multi["foreign"][2]
    assert inspect["Architecture"] == multi["other"]


def test_an_index_without_our_platform_names_what_it_has(tmp_path, multi, env):
    root = tmp_path / "root"
    err = fails(run(root, "pull", f"{multi['repo']}:neither", env=env))
    assert "no matching manifest for linux/" in err
    assert "linux/ppc64le" in err and "linux/s390x" in err
    store = store_of(root)
    assert store.image_ids() == [] and store.tags() == {} and store.blob_digests() == []


def test_platform_of_a_single_manifest_image_must_match(tmp_path, multi, env):
    root = tmp_path / "root"
    err = fails(run(root, "pull", "--platform", "linux/s390x", f"{multi['repo']}:foreign", env=env))
    assert "does not match the specified platform: wanted linux/s390x" in err
    assert store_of(root).image_ids() == []


def test_a_base_image_of_another_platform_warns(tmp_path, multi, env):
    from builder.image.platform import host_platform

    root = tmp_path / "root"
    name = f"{multi['repo']}:foreign"
    ctx = context(tmp_path / "ctx", f"FROM {name}\nLABEL x=y\n")
    result = run(root, "build", "--progress", "plain", "-t", "warned", str(ctx), env=env)
    ok(result)
    stderr = result.stderr.decode()
    want = host_platform().format()
    assert (f' - InvalidBaseImagePlatform: Base image {name} was pulled with platform "linux/{multi["other"]}", '
            f'expected "{want}" for current build (line 1)') in stderr, stderr


# ----------------------------------------------------------------------------------------------
# builds


def test_from_pulls_a_missing_base_and_copy_from_an_image_too(tmp_path, registry, registry_busybox, env):
    root = tmp_path / "root"
    repo = f"{registry.host}/{unique_repo('copysrc')}"
    # an image only in the registry for COPY --from
    src_root = tmp_path / "src"
    ok(run(src_root, "pull", "-q", registry_busybox, env=env))
    ctx = context(tmp_path / "srcctx", f"FROM {registry_busybox}\nRUN echo from-registry > /marker\n")
    ok(run(src_root, "build", "-q", "-t", f"{repo}:1", "--push", str(ctx), env=env))

    ctx = context(tmp_path / "ctx", f"FROM {registry_busybox}\nCOPY --from={repo}:1 /marker /marker\n")
    result = run(root, "build", "--progress", "plain", "-t", "app:1", str(ctx), env=env)
    ok(result)
    assert f"Status: Downloaded newer image for {registry_busybox}" in result.stderr.decode()
    assert ok(run(root, "run", "--rm", "--network", "none", "app:1", "cat", "/marker", env=env)) == "from-registry\n"
    tags = store_of(root).tags()
    assert f"{registry_busybox}" in tags and f"{repo}:1" in tags


def test_pull_flag_follows_a_moved_tag(tmp_path, registry, registry_busybox, env):
    repo = f"{registry.host}/{unique_repo('moving')}"
    pusher = tmp_path / "pusher"
    ok(run(pusher, "pull", "-q", registry_busybox, env=env))
    for version in ("one", "two"):
        ctx = context(tmp_path / f"base-{version}", f"FROM {registry_busybox}\nRUN echo {version} > /version\n")
        ok(run(pusher, "build", "-q", "-t", f"{repo}:latest", str(ctx), env=env))
        if version == "one":
            ok(run(pusher, "push", f"{repo}:latest", env=env))
            root = tmp_path / "root"
            ok(run(root, "pull", "-q", f"{repo}:latest", env=env))
    ok(run(pusher, "push", f"{repo}:latest", env=env))              # the tag now names "two"

    ctx = context(tmp_path / "ctx", f"FROM {repo}:latest\nRUN cp /version /seen\n")
    ok(run(root, "build", "-q", "-t", "app:old", str(ctx), env=env))
    assert ok(run(root, "run", "--rm", "--network", "none", "app:old", "cat", "/seen", env=env)) == "one\n"
    ok(run(root, "build", "-q", "--pull", "-t", "app:new", str(ctx), env=env))
    assert ok(run(root, "run", "--rm", "--network", "none", "app:new", "cat", "/seen", env=env)) == "two\n"


def test_build_push_and_output_type_registry(tmp_path, registry, root_with_busybox, env):
    root = root_with_busybox
    one = f"{registry.host}/{unique_repo('pushed')}:1"
    two = f"{registry.host}/{unique_repo('pushed')}:2"
    ctx = context(tmp_path / "ctx", "FROM busybox\nRUN echo built > /built\n")
    result = run(root, "build", "--progress", "plain", "-t", one, "--push", str(ctx), env=env)
    ok(result)
    stderr = result.stderr.decode()
    digest = remote_digest(one)
    assert f"pushing manifest for {one}@{digest} done" in stderr, stderr
    result = run(root, "build", "--progress", "plain", "-o", f"type=registry,name={two}", str(ctx), env=env)
    ok(result)
    assert remote_digest(two) == digest           # the same image, the same manifest
    assert "Mounted from" in result.stderr.decode() or "Layer already exists" in result.stderr.decode()
    err = fails(run(root, "build", "--push", str(ctx), env=env))
    assert "tag is needed when pushing to registry" in err


# ----------------------------------------------------------------------------------------------
# push details


def test_push_mounts_from_another_repository_and_skips_what_is_there(tmp_path, registry, root_with_busybox, env):
    root = root_with_busybox
    first = f"{registry.host}/{unique_repo('mnt-a')}"
    second = f"{registry.host}/{unique_repo('mnt-b')}"
    ok(run(root, "tag", "busybox", f"{first}:1", env=env))
    ok(run(root, "tag", "busybox", f"{second}:1", env=env))
    out = ok(run(root, "push", f"{first}:1", env=env))
    assert out.count(": Pushed") == 2, out              # config and the one layer
    out = ok(run(root, "push", f"{second}:1", env=env))
    assert f"Mounted from {first.split('/', 1)[1]}" in out and ": Pushed" not in out, out
    out = ok(run(root, "push", "-q", f"{second}:1", env=env))
    assert out == f"{second}:1\n"
    assert remote_digest(f"{first}:1") == remote_digest(f"{second}:1")


def test_large_layers_go_up_in_chunks(tmp_path, registry, root_with_busybox, env, monkeypatch):
    """In-process: small chunk settings make a 5 MiB layer go up as several PATCH requests."""
    from builder.registry import push as push_mod
    from builder.registry.progress import TransferProgress

    root = root_with_busybox
    ctx = context(tmp_path / "ctx", "FROM busybox\nCOPY blob.bin /blob.bin\n")
    (ctx / "blob.bin").write_bytes(random.Random(5).randbytes(5 << 20))   # 5 MiB that gzip cannot shrink
    name = f"{registry.host}/{unique_repo('chunky')}:1"
    ok(run(root, "build", "-q", "-t", name, str(ctx), env=env))
    monkeypatch.setattr(push_mod, "CHUNKED_FROM", 1 << 20)
    monkeypatch.setattr(push_mod, "CHUNK_SIZE", 1 << 20)
    before = registry.log().count('"PATCH ')
    out = io.StringIO()
    with store_of(root) as store:
        result = push_mod.push(store, name, progress=TransferProgress("plain", out=out))
    assert registry.log().count('"PATCH ') - before >= 5
    assert result.digest == remote_digest(name)
    other = tmp_path / "other"
    ok(run(other, "pull", "-q", name, env=env))
    assert ok(run(other, "run", "--rm", "--network", "none", name, "sha256sum", "/blob.bin", env=env)).split()[0] == \
        hashlib.sha256((ctx / "blob.bin").read_bytes()).hexdigest()


def test_push_of_an_unknown_image_and_of_a_digest_reference(tmp_path, registry, root_with_busybox, env):
    err = fails(run(root_with_busybox, "push", f"{registry.host}/nothing-here:1", env=env))
    assert "No such image" in err
    err = fails(run(root_with_busybox, "push", f"{registry.host}/x@sha256:{'a' * 64}", env=env))
    assert "cannot push to a digest reference" in err


# ----------------------------------------------------------------------------------------------
# errors and failed pulls


def test_unknown_tag_names_registry_repository_and_tag(tmp_path, registry_busybox, env):
    root = tmp_path / "root"
    repo = registry_busybox.rsplit(":", 1)[0]
    host, path = repo.split("/", 1)
    err = fails(run(root, "pull", f"{repo}:no-such-tag", env=env))
    assert f"manifest for {repo}:no-such-tag not found" in err
    assert f"registry {host}" in err and f"repository {path}" in err and "tag no-such-tag" in err
    err = fails(run(root, "pull", f"{host}/{unique_repo('absent')}", env=env))
    assert "not found" in err and ":latest" in err
    assert store_of(root).blob_digests() == []


def test_a_corrupt_blob_is_detected_and_nothing_is_stored(tmp_path, make_registry, busybox_archive, busybox_tar, env):
    server = make_registry()
    # a two-layer image: the bottom layer is served intact, the top one corrupt
    root = tmp_path / "src"
    ok(run(root, "import", str(busybox_tar), "busybox:latest", env=env))
    ctx = context(tmp_path / "ctx", "FROM busybox\nRUN echo top > /top\n")
    name = f"{server.host}/corrupt:1"
    ok(run(root, "build", "-q", "-t", name, "--push", str(ctx), env=env))
    store = store_of(root)
    image = store.get_image(store.resolve(name))
    top_blob = store.get_layer(image.layers[-1]).blobs["gzip"]
    data = server.blob_data(top_blob.digest)
    data.write_bytes(bytes(b ^ 0xFF for b in data.read_bytes()))   # same size, other bytes

    clean = tmp_path / "clean"
    err = fails(run(clean, "pull", name, env=env))
    assert top_blob.digest in err and "does not match" in err, err
    fresh = store_of(clean)
    assert fresh.check() == ()
    assert fresh.image_ids() == [] and fresh.tags() == {}
    assert fresh.blob_digests() == [] and fresh.layer_diff_ids() == []     # the intact layer went too


def test_quiet_pull_prints_only_the_name(tmp_path, registry_busybox, env):
    root = tmp_path / "root"
    result = run(root, "pull", "-q", registry_busybox, env=env)
    assert ok(result) == f"{registry_busybox}\n"
    assert result.stderr == b""


def test_progress_bars_on_a_terminal(tmp_path, registry_busybox):
    """In-process, with the progress forced to tty: tqdm bars and the final lines, no crash."""
    from builder.registry.progress import TransferProgress
    from builder.registry.pull import pull

    out = io.StringIO()
    with store_of(tmp_path / "root") as store:
        result = pull(store, registry_busybox, progress=TransferProgress("tty", out=out))
        assert store.resolve(registry_busybox) == result.image_id
    text = out.getvalue()
    assert "Downloading" in text and ": Pull complete" in text and "Status: Downloaded newer image" in text


def test_onbuild_copy_from_of_a_pulled_base_makes_that_stage_a_dependency(tmp_path, registry, registry_busybox,
                                                                          env):
    """The base is resolved (pulled) before the stages are ordered, as BuildKit does, so its ONBUILD
    ``COPY --from=helper`` builds the helper stage that nothing else needs."""
    repo = f"{registry.host}/{unique_repo('onbuild')}"
    maker = tmp_path / "maker"
    ctx = context(tmp_path / "basectx", f"FROM {registry_busybox}\nONBUILD COPY --from=helper /made /made\n")
    ok(run(maker, "build", "-q", "-t", f"{repo}:1", "--push", str(ctx), env=env))

    ctx = context(tmp_path / "ctx", f"FROM {registry_busybox} AS helper\nRUN echo by-helper > /made\n"
                                    f"FROM {repo}:1\n")
    root = tmp_path / "root"
    ok(run(root, "build", "-q", "-t", "app:1", str(ctx), env=env))
    assert ok(run(root, "run", "--rm", "--network", "none", "app:1", "cat", "/made", env=env)) == "by-helper\n"
