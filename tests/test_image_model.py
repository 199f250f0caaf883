"""The image model: canonical JSON, digests, descriptors, manifests, indexes, configs, platforms.

Fixtures under tests/fixtures/images are real-world shaped documents: a Docker-built config (Go's
HTML escaping, Docker-only fields), a BuildKit config, a Docker schema 2 manifest, an OCI manifest,
a Docker Hub style manifest list and a BuildKit OCI index with attestation manifests.
"""

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from builder.errors import ImageError
from builder.image import mediatypes as mt
from builder.image.canonical import FrozenMap, canonical_digest, canonical_json, freeze, load_json, thaw
from builder.image.config import (
    ContainerConfig, Healthcheck, History, ImageConfig, RootFS, format_timestamp, parse_config, parse_timestamp,
)
from builder.image.descriptor import Descriptor, descriptor_for
from builder.image.digest import (
    EMPTY_SHA256, chain_id, chain_ids, digest_hex, is_digest, parse_digest, sha256_digest, short_id, split_digest,
)
from builder.image.index import (
    ImageIndex, build_index, matching_manifests, parse_document, parse_index, select_manifest,
)
from builder.image.manifest import Manifest, build_manifest, image_problems, parse_manifest, validate_image
from builder.image.platform import Platform, only, platform_matches, platform_vector

FIXTURES = Path(__file__).parent / "fixtures" / "images"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def d(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


# -- canonical JSON ------------------------------------------------------------------------------

def test_canonical_json_form():
    assert canonical_json({"b": 1, "a": [True, None, "x"], "c": {"z": {}, "y": []}}) == \
        b'{"a":[true,null,"x"],"b":1,"c":{"y":[],"z":{}}}'
    # UTF-8 text, not \u escapes; Go's short escapes; other control characters as \u00XX.
    assert canonical_json("é\u00ff😀") == '"é\u00ff😀"'.encode()
    assert canonical_json('"\\\b\f\n\r\t\x01\x1f\x7f') == b'"\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001f\x7f"'
    # Go always escapes U+2028/U+2029; a lone surrogate (not UTF-8) becomes U+FFFD as Go reads it.
    assert canonical_json("\u2028\u2029\ud800") == '"\\u2028\\u2029\ufffd"'.encode()
    # Keys sort by code point, which is UTF-8 byte order.
    assert canonical_json({"é": 1, "z": 2, "Z": 3, "a": 4}) == '{"Z":3,"a":4,"z":2,"é":1}'.encode()


def test_canonical_json_html_escaping_is_optional():
    assert canonical_json({"a": "<b> & c"}) == b'{"a":"<b> & c"}'
    assert canonical_json({"a": "<b> & c"}, escape_html=True) == b'{"a":"\\u003cb\\u003e \\u0026 c"}'


@pytest.mark.parametrize("value,text", [
    (0.0, "0"), (-0.0, "-0"), (1.0, "1"), (2.5, "2.5"), (0.1, "0.1"), (1e20, "100000000000000000000"),
    (1e21, "1e+21"), (1.5e-7, "1.5e-7"), (1e-6, "0.000001"), (123456789.125, "123456789.125"),
    (-1e-10, "-1e-10"), (1.7976931348623157e308, "1.7976931348623157e+308"),
])
def test_canonical_json_floats_as_go(value, text):
    assert canonical_json(value) == text.encode()


def test_canonical_json_rejects_what_go_rejects():
    for bad in (float("nan"), float("inf"), {1: "x"}, {"a": object()}):
        with pytest.raises(ValueError):
            canonical_json(bad)


def test_canonical_digest_is_stable():
    value = {"schemaVersion": 2, "manifests": [], "annotations": {"k": "v & <w>"}}
    data = canonical_json(value)
    assert data == b'{"annotations":{"k":"v & <w>"},"manifests":[],"schemaVersion":2}'
    assert canonical_digest(value) == "sha256:" + hashlib.sha256(data).hexdigest()
    # Frozen or plain, any key order: one digest.
    reordered = {"manifests": (), "annotations": FrozenMap({"k": "v & <w>"}), "schemaVersion": 2}
    assert canonical_digest(reordered) == canonical_digest(value)
    # Agrees with Python's json for ASCII data.
    assert data == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def test_load_json_reads_as_go_does():
    value = load_json(b'{"a": [1, {"b": null}], "c": "\\u00e9"}')
    assert value == {"a": (1, {"b": None}), "c": "é"}
    assert isinstance(value, FrozenMap) and isinstance(value["a"][1], FrozenMap)
    assert thaw(value) == {"a": [1, {"b": None}], "c": "é"}
    assert load_json(b'"\xff"') == "\ufffd"  # invalid UTF-8 -> U+FFFD, as Go
    for bad in (b'{"a": NaN}', b"[1] x", b"{", b"", b'{"a":1,}'):
        with pytest.raises(ImageError) as info:
            load_json(bad, "image manifest", "blob")
        assert info.value.message.startswith("invalid image manifest: ") and info.value.subject == "blob"


def test_frozen_values():
    value = freeze({"a": [1, {"b": 2}]})
    assert hash(value) == hash(freeze({"a": [1, {"b": 2}]}))
    with pytest.raises(TypeError):
        value["a"] = 1
    with pytest.raises(AttributeError):
        value.x = 1
    assert value.set("c", 3) == {"a": (1, {"b": 2}), "c": 3} and "c" not in value


# -- digests ---------------------------------------------------------------------------------------

def test_digest_helpers():
    assert sha256_digest(b"") == EMPTY_SHA256
    hexpart = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert parse_digest(EMPTY_SHA256) == EMPTY_SHA256
    assert split_digest(EMPTY_SHA256) == ("sha256", hexpart)
    assert digest_hex(EMPTY_SHA256) == hexpart
    assert short_id(EMPTY_SHA256) == "e3b0c44298fc"
    assert is_digest(EMPTY_SHA256) and not is_digest("sha256:abc") and not is_digest(None)


@pytest.mark.parametrize("text,problem", [
    ("sha256:" + "a" * 63, "invalid checksum digest length"),
    ("sha256:" + "A" * 64, "invalid checksum digest format"),
    ("sha256:" + "g" * 64, "invalid checksum digest format"),
    ("md5:" + "a" * 32, "unsupported digest algorithm"),
    ("Md5:" + "a" * 32, "invalid checksum digest format"),
    ("sha256", "invalid checksum digest format"),
    (":abc", "invalid checksum digest format"),
    ("sha256:", "invalid checksum digest format"),
])
def test_digest_errors(text, problem):
    with pytest.raises(ImageError) as info:
        parse_digest(text, "layer digest")
    assert info.value.message == f"invalid layer digest {text!r}: {problem}"
    assert info.value.subject == text


def test_chain_ids_follow_the_spec():
    a, b, c = d("a"), d("b"), d("c")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == (a, ab, abc)
    assert chain_id([a, b, c]) == abc and chain_id([]) == ""
    with pytest.raises(ImageError):
        chain_ids(["nope"])


# -- media types -----------------------------------------------------------------------------------

def test_media_types():
    assert mt.layer_compression(mt.OCI_LAYER_ZSTD) == "zstd"
    assert mt.layer_compression(mt.DOCKER_LAYER_GZIP) == "gzip"
    assert mt.layer_compression(mt.OCI_LAYER) == ""
    assert not mt.is_distributable(mt.DOCKER_FOREIGN_LAYER_GZIP)
    assert mt.layer_media_type("gzip") == mt.OCI_LAYER_GZIP
    assert mt.layer_media_type("gzip", docker=True) == mt.DOCKER_LAYER_GZIP
    assert mt.layer_media_type("", docker=True) == mt.DOCKER_LAYER
    assert mt.to_docker(mt.OCI_LAYER_GZIP) == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert mt.to_oci(mt.DOCKER_LAYER_GZIP) == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert mt.to_oci(mt.DOCKER_FOREIGN_LAYER_GZIP) == mt.OCI_LAYER_NONDIST_GZIP
    assert mt.to_oci(mt.DOCKER_LAYER_ZSTD) == mt.OCI_LAYER_ZSTD
    assert mt.to_docker(mt.OCI_MANIFEST) == mt.DOCKER_MANIFEST and mt.to_oci(mt.DOCKER_MANIFEST_LIST) == mt.OCI_INDEX
    assert mt.to_docker(mt.OCI_CONFIG) == mt.DOCKER_CONFIG
    assert mt.to_oci("application/vnd.in-toto+json") == "application/vnd.in-toto+json"
    for bad in (mt.OCI_LAYER_ZSTD, mt.OCI_EMPTY):
        with pytest.raises(ImageError):
            mt.to_docker(bad)
    with pytest.raises(ImageError):
        mt.layer_compression("application/json")


# -- descriptors -----------------------------------------------------------------------------------

def test_descriptor_round_trip_keeps_unknown_fields():
    obj = {"mediaType": mt.OCI_LAYER_GZIP, "digest": d("x"), "size": 3, "urls": ["https://e.example/x"],
           "annotations": {"k": "v"}, "data": "e30=", "platform": {"architecture": "amd64", "os": "linux",
                                                                  "features": ["sse4"], "os.features": ["f"]},
           "artifactType": "application/x"}
    desc = Descriptor.from_dict(freeze(obj))
    assert desc.platform == Platform("linux", "amd64", os_features=("f",))
    assert desc.extra == {"data": "e30="} and desc.platform_extra == {"features": ("sse4",)}
    assert canonical_json(desc.to_dict()) == canonical_json(obj)
    assert hash(desc) == hash(Descriptor.from_dict(freeze(obj)))


@pytest.mark.parametrize("obj,message", [
    ({"digest": d("x"), "size": 1}, "layers[0]: missing required field 'mediaType'"),
    ({"mediaType": "a", "digest": "sha256:xyz", "size": 1}, "layers[0]: invalid digest 'sha256:xyz': "
                                                            "invalid checksum digest length"),
    ({"mediaType": "a", "digest": d("x"), "size": "1"}, "layers[0]: size must be an integer, got a string"),
    ({"mediaType": "a", "digest": d("x"), "size": -1}, f"invalid descriptor size -1 for {d('x')}"),
    ({"mediaType": "a", "digest": d("x"), "size": 1, "annotations": {"k": 1}},
     "layers[0].annotations: expected an object of strings, got an object"),
    ([], "layers[0]: expected an object, got an array"),
])
def test_descriptor_errors(obj, message):
    with pytest.raises(ImageError) as info:
        Descriptor.from_dict(freeze(obj), "layers[0]")
    assert info.value.message == message


def test_descriptor_for_bytes():
    desc = descriptor_for(mt.OCI_CONFIG, b"{}")
    assert desc.digest == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert desc.size == 2


# -- fixtures: byte-exact preservation and semantic round trips --------------------------------------

PARSERS = {
    "docker-config.json": parse_config, "oci-config.json": parse_config,
    "docker-manifest.json": parse_manifest, "oci-manifest.json": parse_manifest,
    "docker-manifest-list.json": parse_index, "oci-index-attestations.json": parse_index,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_fixture_bytes_are_kept(name):
    data = fixture(name)
    value = PARSERS[name](data)
    assert value.raw == data and value.to_bytes() == data
    assert value.digest == sha256_digest(data) and value.size == len(data)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_fixture_semantic_round_trip(name):
    value = PARSERS[name](fixture(name))
    canonical = value.canonical_bytes()
    again = PARSERS[name](canonical)
    assert again == value
    assert again.canonical_bytes() == canonical          # canonical form is a fixed point
    assert json.loads(canonical) == json.loads(_drop_nulls(fixture(name)))  # nothing lost but nulls


_OMITEMPTY = {"User", "WorkingDir", "Volumes", "OnBuild", "Entrypoint", "Cmd", "Env", "Labels", "StopSignal"}


def _drop_nulls(data: bytes) -> bytes:
    """Go's omitempty drops null/empty known fields; compare against the input without them."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if not (k in _OMITEMPTY and x in (None, "", [], {}))}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(json.loads(data))).encode()


def test_changed_values_are_written_canonically():
    data = fixture("docker-config.json")
    config = parse_config(data)
    changed = config.with_config(user="nginx")
    assert changed.raw is None and changed.to_bytes() == changed.canonical_bytes()
    assert changed.digest != config.digest
    assert replace(config, author="x").raw is None
    assert config.to_bytes() == data                      # the original is untouched
    # A value equal to a parsed one but built here is written canonically.
    rebuilt = ImageConfig.from_dict(load_json(data))
    assert rebuilt == config and rebuilt.raw is None and rebuilt.to_bytes() != data


def test_docker_config_fixture():
    data = fixture("docker-config.json")
    config = parse_config(data)
    assert b"\\u003cdocker-maint@nginx.com\\u003e" in data            # Go's HTML escaping, kept as read
    assert config.config.labels["maintainer"] == "NGINX Docker Maintainers <docker-maint@nginx.com>"
    assert config.platform == Platform("linux", "amd64")
    assert config.config.cmd == ("nginx", "-g", "daemon off;")
    assert config.config.entrypoint == ("/docker-entrypoint.sh",)
    assert config.config.exposed_ports == ("80/tcp",) and config.config.stop_signal == "SIGQUIT"
    assert len(config.history) == 10 and sum(not h.empty_layer for h in config.history) == 3
    # Docker-only fields survive a change.
    assert set(config.extra) == {"container", "container_config", "docker_version"}
    assert config.config.extra["Hostname"] == "" and config.config.extra["AttachStdin"] is False
    out = json.loads(config.with_config(env=config.config.env + ("A=1",)).to_bytes())
    assert out["docker_version"] == "20.10.23" and out["config"]["Image"].startswith("sha256:3f3f")
    assert out["container_config"]["Cmd"][-1] == 'CMD ["nginx" "-g" "daemon off;"]'
    assert out["config"]["Env"][-1] == "A=1"
    assert "<docker-maint@nginx.com>" in out["config"]["Labels"]["maintainer"]  # we do not HTML-escape


def test_buildkit_config_fixture():
    config = parse_config(fixture("oci-config.json"))
    c = config.config
    assert config.platform == Platform("linux", "arm", "v7")
    assert config.created == "2024-03-05T10:11:12.000000001Z"
    assert c.healthcheck == Healthcheck(("CMD-SHELL", "wget -qO- http://localhost:8080/health || exit 1"),
                                        interval=30 * 10**9, timeout=5 * 10**9, start_period=10 * 10**9, retries=3)
    assert c.on_build == ("COPY . /srv/app/src",) and c.shell == ("/bin/ash", "-eo", "pipefail", "-c")
    assert c.args_escaped is True and c.volumes == ("/data",) and c.working_dir == "/srv/app"
    assert c.extra == {"x-vendor-setting": {"nested": (1, 2.5, None, True)}}
    assert config.extra == {"moby.buildkit.buildinfo.v1": "eyJmcm9udGVuZCI6ImRvY2tlcmZpbGUudjAifQ=="}
    assert config.history[2].comment == "buildkit.dockerfile.v0"


def test_manifest_fixtures():
    docker = parse_manifest(fixture("docker-manifest.json"))
    oci = parse_manifest(fixture("oci-manifest.json"))
    assert docker.is_docker and docker.kind == mt.DOCKER_MANIFEST
    assert [layer.media_type for layer in docker.layers] == [mt.DOCKER_LAYER_GZIP] * 3
    assert not oci.is_docker and oci.layers[1].media_type == mt.OCI_LAYER_ZSTD
    assert oci.annotations[mt.ANNOTATION_BASE_NAME] == "docker.io/library/alpine:3.19"
    assert oci.layers[1].annotations == {"containerd.io/uncompressed": d("diff-app")}
    validate_image(parse_config(fixture("docker-config.json")), docker)
    validate_image(parse_config(fixture("oci-config.json")), oci)


def test_manifest_family_conversion():
    docker = parse_manifest(fixture("docker-manifest.json"))
    oci = docker.to_oci()
    assert oci.media_type == mt.OCI_MANIFEST and oci.config.media_type == mt.OCI_CONFIG
    assert {layer.media_type for layer in oci.layers} == {mt.OCI_LAYER_GZIP}
    assert oci.to_docker() == docker and docker.to_docker() is docker
    assert oci.raw is None and oci.digest != docker.digest
    with pytest.raises(ImageError) as info:
        parse_manifest(fixture("oci-manifest.json")).to_docker()
    assert "annotations" in info.value.message
    zstd = Manifest(Descriptor(mt.OCI_CONFIG, d("c"), 1), (Descriptor(mt.OCI_LAYER_ZSTD, d("l"), 1),))
    with pytest.raises(ImageError) as info:
        zstd.to_docker()
    assert "zstd" in info.value.message


def test_manifest_parse_errors():
    good = json.loads(fixture("oci-manifest.json"))
    cases = [
        ({**good, "schemaVersion": 1}, "Docker schema 1 manifests are deprecated"),
        ({**good, "schemaVersion": 3}, "schemaVersion 3, expected 2"),
        ({k: v for k, v in good.items() if k != "config"}, "missing required field 'config'"),
        ({k: v for k, v in good.items() if k != "layers"}, "missing required field 'layers'"),
        ({**good, "layers": [{"mediaType": mt.OCI_LAYER, "digest": "x", "size": 1}]}, "layers[0]: invalid digest"),
        (json.loads(fixture("oci-index-attestations.json")), "this is an image index"),
    ]
    for obj, message in cases:
        with pytest.raises(ImageError) as info:
            parse_manifest(json.dumps(obj).encode(), subject="ref")
        assert message in info.value.message, info.value.message
        assert info.value.subject == "ref"
    with pytest.raises(ImageError):
        parse_manifest(fixture("oci-manifest.json"), media_type=mt.DOCKER_MANIFEST)


def test_manifest_without_media_type_field():
    obj = json.loads(fixture("oci-manifest.json"))
    del obj["mediaType"]
    data = json.dumps(obj).encode()
    assert parse_manifest(data).media_type == "" and parse_manifest(data).kind == mt.OCI_MANIFEST
    assert parse_manifest(data, mt.OCI_MANIFEST).media_type == mt.OCI_MANIFEST
    assert parse_manifest(data).to_bytes() == data


def test_parse_document_tells_manifests_from_indexes():
    assert isinstance(parse_document(fixture("docker-manifest-list.json")), ImageIndex)
    assert isinstance(parse_document(fixture("oci-manifest.json")), Manifest)
    bare = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert isinstance(parse_document(bare), ImageIndex)
    assert parse_document(bare).to_bytes() == bare
    with pytest.raises(ImageError):
        parse_index(fixture("docker-manifest.json"))


# -- the validator ---------------------------------------------------------------------------------

def _image(layers: int = 2, *, docker: bool = False):
    config = ImageConfig(architecture="amd64", os="linux", created=format_timestamp(1_700_000_000 * 10**9))
    for i in range(layers):
        config = config.with_layer(d(f"diff{i}"), History(created=config.created, created_by=f"RUN step {i}"))
        config = config.with_history(History(created=config.created, created_by="ENV A=1", empty_layer=True))
    blobs = [Descriptor(mt.layer_media_type("gzip", docker=docker), d(f"blob{i}"), 100 + i) for i in range(layers)]
    return config, build_manifest(config, blobs, docker=docker)


def test_validator_accepts_consistent_images():
    for docker in (False, True):
        config, manifest = _image(docker=docker)
        assert image_problems(config, manifest) == []
    config, manifest = _image(0)
    assert image_problems(config, manifest) == []


def test_validator_catches_mismatches():
    config, manifest = _image()
    extra_layer = manifest.with_layers(manifest.layers + (Descriptor(mt.OCI_LAYER_GZIP, d("x"), 1),))
    assert image_problems(config, extra_layer) == ["manifest has 3 layers but the config has 2 diff_ids"]

    no_history = replace(config, history=config.history[:-2])
    problems = image_problems(no_history, build_manifest(no_history, manifest.layers))
    assert problems == ["config has 1 non-empty history entries but 2 diff_ids"]

    mixed = manifest.with_layers((replace(manifest.layers[0], media_type=mt.DOCKER_LAYER_GZIP),) + manifest.layers[1:])
    assert image_problems(config, mixed) == [f"layers[0]: {mt.DOCKER_LAYER_GZIP} in a OCI manifest"]

    wrong_config_type = replace(manifest, config=replace(manifest.config, media_type=mt.DOCKER_CONFIG))
    assert image_problems(config, wrong_config_type) == [
        f"config descriptor: mediaType {mt.DOCKER_CONFIG} in a OCI manifest, expected {mt.OCI_CONFIG}"]

    changed = config.with_config(user="nobody")
    assert image_problems(changed, manifest) == [
        f"config descriptor: digest {manifest.config.digest} but the config is {changed.digest}",
        f"config descriptor: size {manifest.config.size} but the config has {changed.size} bytes"]

    bad_diff = replace(config, rootfs=RootFS(diff_ids=("sha256:nope", config.diff_ids[1])))
    problems = image_problems(bad_diff, build_manifest(bad_diff, manifest.layers))
    assert problems == ["config: rootfs.diff_ids[0] 'sha256:nope': invalid checksum digest length"]

    odd = replace(config, rootfs=replace(config.rootfs, type="tarballs"), created="yesterday", os="")
    problems = image_problems(odd, build_manifest(odd, manifest.layers))
    assert problems == ["config: os and architecture are required",
                        "config: rootfs.type is 'tarballs', expected 'layers'",
                        "config: created: invalid timestamp 'yesterday': expected RFC 3339 (2006-01-02T15:04:05Z07:00)"]

    not_a_layer = manifest.with_layers((replace(manifest.layers[0], media_type="application/json"),)
                                       + manifest.layers[1:])
    assert image_problems(config, not_a_layer) == ["layers[0]: application/json is not a layer media type"]

    with pytest.raises(ImageError) as info:
        validate_image(config, extra_layer)
    assert info.value.message == "invalid image:\n  manifest has 3 layers but the config has 2 diff_ids"


# -- config mutations -------------------------------------------------------------------------------

def test_config_mutations_return_new_values():
    base = parse_config(fixture("oci-config.json"))
    step = History(created=format_timestamp(1_709_633_473 * 10**9), created_by="RUN make", comment="pybuild")
    grown = base.with_layer(d("new"), step)
    assert grown.diff_ids == base.diff_ids + (d("new"),) and grown.history[-1] == step
    assert base.diff_ids == (d("diff-alpine"), d("diff-app"))           # unchanged
    assert grown.extra == base.extra and grown.config == base.config      # unknown fields carried
    meta = grown.with_history(History(created_by="LABEL a=b", empty_layer=True))
    assert len(meta.history) == len(grown.history) + 1 and meta.diff_ids == grown.diff_ids
    with pytest.raises(ValueError):
        base.with_layer(d("x"), History(empty_layer=True))
    with pytest.raises(ValueError):
        base.with_history(History(created_by="RUN x"))
    with pytest.raises(ImageError):
        base.with_layer("sha256:short", step)
    configured = base.with_config(cmd=["a", "b"], labels={"x": "y"}, healthcheck=None)
    assert configured.config.cmd == ("a", "b") and configured.config.labels == {"x": "y"}
    assert configured.config.healthcheck is None and configured.config.extra == base.config.extra
    assert "Healthcheck" not in json.loads(configured.to_bytes())["config"]
    with pytest.raises(TypeError):
        base.with_config(Cmd=["x"])
    moved = base.with_platform(Platform("linux", "arm64", "v8"))
    assert moved.platform == Platform("linux", "arm64", "v8") and moved.diff_ids == base.diff_ids


def test_new_config_serialisation():
    config = ImageConfig(architecture="amd64", os="linux", config=ContainerConfig(
        env=("PATH=/bin",), cmd=("sh",), exposed_ports=("80/tcp",), volumes=("/v",), labels={"a": "<b>"},
        args_escaped=False, healthcheck=Healthcheck(("NONE",))))
    assert config.to_bytes() == (
        b'{"architecture":"amd64","config":{"Cmd":["sh"],"Env":["PATH=/bin"],"ExposedPorts":{"80/tcp":{}},'
        b'"Healthcheck":{"Test":["NONE"]},"Labels":{"a":"<b>"},"Volumes":{"/v":{}}},"os":"linux",'
        b'"rootfs":{"diff_ids":[],"type":"layers"}}')
    assert config.digest == sha256_digest(config.to_bytes())
    assert parse_config(config.to_bytes()) == config


def test_config_parse_errors():
    with pytest.raises(ImageError) as info:
        parse_config(b'{"architecture": 1}', subject="sha256:x")
    assert info.value.message == "image config: architecture must be a string" and info.value.subject == "sha256:x"
    with pytest.raises(ImageError):
        parse_config(b'{"config": {"Env": "A=1"}}')
    with pytest.raises(ImageError):
        parse_config(b"[]")
    with pytest.raises(ImageError):
        parse_config(b'{"history": [{"empty_layer": "yes"}]}')


# -- timestamps ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ns,text", [
    (0, "1970-01-01T00:00:00Z"),
    (1_700_000_000 * 10**9, "2023-11-14T22:13:20Z"),
    (1_700_000_000 * 10**9 + 1, "2023-11-14T22:13:20.000000001Z"),
    (1_700_000_000 * 10**9 + 120_000_000, "2023-11-14T22:13:20.12Z"),
    (1_700_000_000 * 10**9 + 123_456_789, "2023-11-14T22:13:20.123456789Z"),
    (-1, "1969-12-31T23:59:59.999999999Z"),
])
def test_timestamps_as_go_writes_them(ns, text):
    assert format_timestamp(ns) == text
    assert parse_timestamp(text) == ns


def test_timestamp_parsing():
    from datetime import datetime, timezone
    assert format_timestamp(datetime(2024, 3, 5, 10, 11, 12, 500, tzinfo=timezone.utc)) == "2024-03-05T10:11:12.0005Z"
    assert parse_timestamp("2023-11-14T23:13:20+01:00") == parse_timestamp("2023-11-14T22:13:20Z")
    assert parse_timestamp("2023-11-14T22:13:20.1234567891Z") == 1_700_000_000_123_456_789
    for bad in ("2023-11-14", "2023-02-30T00:00:00Z", "2023-11-14T25:00:00Z", "2023-11-14T22:13:20", 7):
        with pytest.raises(ImageError):
            parse_timestamp(bad)


# -- platforms and selection ----------------------------------------------------------------------

def _formats(entries):
    return [e.platform.format_all() if e.platform else "-" for e in entries]


@pytest.mark.parametrize("target,expected", [
    (Platform("linux", "amd64"), "linux/amd64"),
    (Platform("linux", "amd64", "v3"), "linux/amd64"),              # amd64/v3 runs plain amd64
    (Platform("linux", "arm64"), "linux/arm64/v8"),                   # v8 == no variant
    (Platform("linux", "arm64", "v8"), "linux/arm64/v8"),
    (Platform("linux", "aarch64"), "linux/arm64/v8"),
    (Platform("linux", "arm"), "linux/arm/v7"),                       # arm means arm/v7
    (Platform("linux", "arm", "v7"), "linux/arm/v7"),
    (Platform("linux", "arm", "v6"), "linux/arm/v6"),
    (Platform("linux", "arm", "v5"), "linux/arm/v5"),
    (Platform("linux", "386"), "linux/386"),
    (Platform("linux", "s390x"), "linux/s390x"),
    (Platform("windows", "amd64", os_version="10.0.20348.2113"), "windows(10.0.20348.2340)/amd64"),
    (Platform("windows", "amd64", os_version="10.0.26100.1"), "windows(10.0.20348.2340)/amd64"),
    (Platform("windows", "amd64", os_version="10.0.17763.100"), "windows(10.0.17763.5458)/amd64"),
    (Platform("windows", "amd64"), "windows(10.0.20348.2340)/amd64"),
])
def test_select_from_docker_manifest_list(target, expected):
    index = parse_index(fixture("docker-manifest-list.json"))
    assert select_manifest(index, target).platform.format_all() == expected


def test_manifest_list_fallback_order():
    index = parse_index(fixture("docker-manifest-list.json"))
    assert _formats(matching_manifests(index, Platform("linux", "arm64"))) == [
        "linux/arm64/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert _formats(matching_manifests(index, Platform("linux", "arm", "v7"))) == [
        "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert _formats(matching_manifests(index, Platform("linux", "amd64"))) == ["linux/amd64", "linux/386"]
    # Docker's CPU "features" are kept but, as in containerd, do not take part in matching.
    i386 = select_manifest(index, Platform("linux", "386"))
    assert i386.platform_extra == {"features": ("sse4",)}
    assert json.loads(index.canonical_bytes())["manifests"][5]["platform"]["features"] == ["sse4"]


def test_attestations_are_never_selected():
    index = parse_index(fixture("oci-index-attestations.json"))
    assert len(index.manifests) == 6 and len(index.images()) == 3
    assert sum(e.is_attestation for e in index.manifests) == 3
    assert _formats(matching_manifests(index, Platform("linux", "arm64"))) == ["linux/arm64", "linux/arm/v7"]
    assert select_manifest(index, Platform("linux", "arm", "v7")).digest == \
        parse_manifest(fixture("oci-manifest.json")).digest
    for target in (Platform("unknown", "unknown"), Platform("linux", "s390x")):
        with pytest.raises(ImageError) as info:
            select_manifest(index, target)
        assert info.value.message == (f"no matching manifest for {target.format_all()} in the manifest list "
                                      "entries (available: linux/amd64, linux/arm64, linux/arm/v7)")
    # Even an attestation without the unknown/unknown platform is not an image.
    entry = replace(index.manifests[3], platform=Platform("linux", "amd64"))
    assert select_manifest(ImageIndex((entry,) + index.manifests[:1]), Platform("linux", "amd64")) == index.manifests[0]


def test_selection_errors_list_platforms():
    index = parse_index(fixture("docker-manifest-list.json"))
    with pytest.raises(ImageError) as info:
        select_manifest(index, Platform("linux", "riscv64"))
    assert info.value.message == (
        "no matching manifest for linux/riscv64 in the manifest list entries (available: linux/amd64, "
        "linux/arm/v5, linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/386, linux/ppc64le, linux/s390x, "
        "windows(10.0.20348.2340)/amd64, windows(10.0.17763.5458)/amd64)")
    assert info.value.subject == "linux/riscv64"
    with pytest.raises(ImageError) as info:
        select_manifest(ImageIndex(), Platform("linux", "amd64"))
    assert info.value.message.endswith("(available: none)")


def test_selection_order_and_platformless_entries():
    m = mt.OCI_MANIFEST
    entries = (
        Descriptor(m, d("none"), 1),                                             # no platform: last resort
        Descriptor(m, d("v1"), 1, platform=Platform("linux", "amd64", "v1")),  # same as plain amd64
        Descriptor(m, d("v2"), 1, platform=Platform("linux", "amd64", "v2")),
        Descriptor(m, d("v4"), 1, platform=Platform("linux", "amd64", "v4")),
        Descriptor(m, d("386"), 1, platform=Platform("linux", "386")),
        Descriptor(m, d("plain"), 1, platform=Platform("linux", "amd64")),
        Descriptor("application/vnd.example.artifact", d("art"), 1, platform=Platform("linux", "amd64")),
    )
    index = ImageIndex(entries)
    assert [e.digest for e in matching_manifests(index, Platform("linux", "amd64", "v3"))] == [
        d("v2"), d("v1"), d("plain"), d("386"), d("none")]
    assert [e.digest for e in matching_manifests(index, Platform("linux", "amd64"))] == [
        d("v1"), d("plain"), d("386"), d("none")]
    assert select_manifest(ImageIndex(entries[:1]), Platform("linux", "arm64")).digest == d("none")
    nested = Descriptor(mt.OCI_INDEX, d("nested"), 1, platform=Platform("linux", "arm64"))
    assert select_manifest(ImageIndex((nested,)), Platform("linux", "arm64")) == nested


def test_platform_vectors_as_containerd():
    def vec(p):
        return [q.format() for q in platform_vector(p)]
    assert vec(Platform("linux", "amd64")) == ["linux/amd64", "linux/386"]
    assert vec(Platform("linux", "arm", "v8")) == ["linux/arm/v8", "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert vec(Platform("linux", "arm64", "v9.2"))[:4] == ["linux/arm64/v9.2", "linux/arm64/v9.1", "linux/arm64/v9",
                                                          "linux/arm64/v8.7"]
    assert vec(Platform("linux", "arm64", "v9.2"))[-6:] == ["linux/arm64/v8.1", "linux/arm64/v8", "linux/arm/v8",
                                                           "linux/arm/v7", "linux/arm/v6", "linux/arm/v5"]
    assert vec(Platform("linux", "ppc64le")) == ["linux/ppc64le"]
    assert only(Platform("Linux", "x86_64")).target == Platform("linux", "amd64")


def test_platform_matches():
    assert platform_matches(Platform("linux", "arm64"), Platform("linux", "arm64", "v8"))
    assert platform_matches(Platform("linux", "arm"), Platform("linux", "arm", "7"))
    assert not platform_matches(Platform("linux", "arm", "v7"), Platform("linux", "arm", "v6"))  # only() falls back
    assert not platform_matches(Platform("linux", "amd64"), Platform("linux", "amd64", "v2"))
    assert not platform_matches(Platform("linux", "amd64"), Platform("unknown", "unknown"))
    # OS features: the candidate's must be a subset of the target's; win32k is ignored on Windows.
    assert platform_matches(Platform("linux", "amd64", os_features=("a", "b")), Platform("linux", "amd64",
                                                                                         os_features=("b",)))
    assert not platform_matches(Platform("linux", "amd64"), Platform("linux", "amd64", os_features=("b",)))
    assert platform_matches(Platform("windows", "amd64"), Platform("windows", "amd64", os_features=("win32k",)))
    # Windows builds: exact before LTSC 2022, from the host's LTSC up to the host build after it.
    host = Platform("windows", "amd64", os_version="10.0.26200.1")
    assert platform_matches(host, Platform("windows", "amd64", os_version="10.0.26100.5"))
    assert not platform_matches(host, Platform("windows", "amd64", os_version="10.0.20348.5"))
    assert not platform_matches(host, Platform("windows", "amd64", os_version="10.0.26300.5"))
    old = Platform("windows", "amd64", os_version="10.0.17763.1")
    assert not platform_matches(old, Platform("windows", "amd64", os_version="10.0.14393.1"))


def test_build_index_and_descriptors():
    config, manifest = _image()
    entry = manifest.descriptor(Platform("linux", "amd64"))
    assert (entry.media_type, entry.digest, entry.size) == (mt.OCI_MANIFEST, manifest.digest, manifest.size)
    index = build_index([entry], annotations={mt.ANNOTATION_CREATED: config.created})
    assert parse_index(index.to_bytes()) == index
    assert select_manifest(index, Platform("linux", "amd64")) == entry
    docker = build_index([replace(entry, media_type=mt.DOCKER_MANIFEST)], docker=True)
    assert docker.media_type == mt.DOCKER_MANIFEST_LIST and docker.is_docker
    with pytest.raises(ImageError):
        index.to_docker()                                   # annotations are OCI-only
    assert docker.to_oci().manifests[0].media_type == mt.OCI_MANIFEST


def test_models_read_plain_python_values_too():
    obj = json.loads(fixture("oci-manifest.json"))
    assert Manifest.from_dict(obj) == parse_manifest(fixture("oci-manifest.json"))
    assert ImageConfig.from_dict(json.loads(fixture("oci-config.json"))) == parse_config(fixture("oci-config.json"))
    assert ImageIndex.from_dict(json.loads(fixture("docker-manifest-list.json"))) == \
        parse_index(fixture("docker-manifest-list.json"))


def test_numbers_go_cannot_hold_are_refused():
    with pytest.raises(ImageError) as info:
        load_json(b'{"a": 1e400}')
    assert "out of range" in info.value.message


def test_build_manifest_puts_layers_in_its_family():
    config, _ = _image()
    docker_layers = [Descriptor(mt.DOCKER_LAYER_GZIP, d(f"blob{i}"), 1) for i in range(2)]
    oci = build_manifest(config, docker_layers)
    assert {layer.media_type for layer in oci.layers} == {mt.OCI_LAYER_GZIP} and image_problems(config, oci) == []
    docker = build_manifest(config, oci.layers, docker=True)
    assert docker.layers == tuple(docker_layers) and docker.config.media_type == mt.DOCKER_CONFIG
    assert image_problems(config, docker) == []
