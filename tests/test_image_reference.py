"""Image references: distribution/reference's own test tables (reference_test.go, normalize_test.go)
plus Docker's defaults, familiar names, error texts and image IDs."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.errors import ImageError, InvalidReference
from builder.image.reference import (
    ImageIdPrefix, Reference, is_image_id, parse_image_id, parse_lookup, parse_normalized_named,
    parse_raw_reference, parse_reference, validate_tag,
)

F64 = "f" * 64
HEX = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"

# -- Parse: the grammar alone (TestReferenceParse) ----------------------------------------------

# input -> (name, domain, tag, digest)
RAW_VALID = {
    "test_com": ("test_com", "", "", ""),
    "test.com:tag": ("test.com", "", "tag", ""),
    "test.com:5000": ("test.com", "", "5000", ""),
    "test.com/repo:tag": ("test.com/repo", "test.com", "tag", ""),
    "test:5000/repo": ("test:5000/repo", "test:5000", "", ""),
    "test:5000/repo:tag": ("test:5000/repo", "test:5000", "tag", ""),
    f"test:5000/repo@sha256:{F64}": ("test:5000/repo", "test:5000", "", f"sha256:{F64}"),
    f"test:5000/repo:tag@sha256:{F64}": ("test:5000/repo", "test:5000", "tag", f"sha256:{F64}"),
    "lowercase:Uppercase": ("lowercase", "", "Uppercase", ""),
    "a/" * 127 + "a:tag-puts-this-over-max": ("a/" * 127 + "a", "a", "tag-puts-this-over-max", ""),
    "sub-dom1.foo.com/bar/baz/quux": ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "", ""),
    "sub-dom1.foo.com/bar/baz/quux:some-long-tag": ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com",
                                                    "some-long-tag", ""),
    "b.gcr.io/test.example.com/my-app:test.example.com": ("b.gcr.io/test.example.com/my-app", "b.gcr.io",
                                                          "test.example.com", ""),
    "xn--n3h.com/myimage:xn--n3h.com": ("xn--n3h.com/myimage", "xn--n3h.com", "xn--n3h.com", ""),
    f"xn--7o8h.com/myimage:xn--7o8h.com@sha256:{F64}": ("xn--7o8h.com/myimage", "xn--7o8h.com", "xn--7o8h.com",
                                                       f"sha256:{F64}"),
    "foo_bar.com:8080": ("foo_bar.com", "", "8080", ""),
    "foo/foo_bar.com:8080": ("foo/foo_bar.com", "foo", "8080", ""),
    "192.168.1.1": ("192.168.1.1", "", "", ""),
    "192.168.1.1:tag": ("192.168.1.1", "", "tag", ""),
    "192.168.1.1:5000": ("192.168.1.1", "", "5000", ""),
    "192.168.1.1/repo": ("192.168.1.1/repo", "192.168.1.1", "", ""),
    "192.168.1.1:5000/repo": ("192.168.1.1:5000/repo", "192.168.1.1:5000", "", ""),
    "192.168.1.1:5000/repo:5050": ("192.168.1.1:5000/repo", "192.168.1.1:5000", "5050", ""),
    "[2001:db8::1]/repo": ("[2001:db8::1]/repo", "[2001:db8::1]", "", ""),
    "[2001:db8:1:2:3:4:5:6]/repo:tag": ("[2001:db8:1:2:3:4:5:6]/repo", "[2001:db8:1:2:3:4:5:6]", "tag", ""),
    "[2001:db8::1]:5000/repo": ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "", ""),
    "[2001:db8::1]:5000/repo:tag": ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag", ""),
    f"[2001:db8::1]:5000/repo@sha256:{F64}": ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "", f"sha256:{F64}"),
    f"[2001:db8::1]:5000/repo:tag@sha256:{F64}": ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "tag",
                                                  f"sha256:{F64}"),
    "[2001:db8::]:5000/repo": ("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "", ""),
    "[::1]:5000/repo": ("[::1]:5000/repo", "[::1]:5000", "", ""),
    "example.com/" + "a" * 255 + ":tag": ("example.com/" + "a" * 255, "example.com", "tag", ""),
    # sha512 is registered in Docker (and here); the Go test leaves it unregistered.
    f"validname@sha512:{'f' * 128}": ("validname", "", "", f"sha512:{'f' * 128}"),
}

RAW_INVALID = {
    "": "repository name must have at least one component",
    ":justtag": "invalid reference format",
    f"@sha256:{F64}": "invalid reference format",
    "repo@sha256:" + "f" * 34: "invalid checksum digest length",
    f"validname@invaliddigest:{F64}": "unsupported digest algorithm",
    "Uppercase:tag": "repository name must be lowercase",
    "test:5000/Uppercase/lowercase:tag": "repository name must be lowercase",
    "domain/" + "a" * 256 + ":tag": "repository name must not be more than 255 characters",
    "aa/asdf$$^/aa": "invalid reference format",
    "[2001:db8::1]": "invalid reference format",
    "[2001:db8::1]:5000": "invalid reference format",
    "[2001:db8::1]:tag": "invalid reference format",
    "[fe80::1%eth0]:5000/repo": "invalid reference format",
    "[fe80::1%@invalidzone]:5000/repo": "invalid reference format",
}


@pytest.mark.parametrize("text", sorted(RAW_VALID))
def test_raw_parse_valid(text):
    name, domain, tag, digest = RAW_VALID[text]
    ref = parse_raw_reference(text)
    assert (ref.name, ref.domain, ref.tag, ref.digest) == (name, domain, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize("text", sorted(RAW_INVALID))
def test_raw_parse_invalid(text):
    with pytest.raises(InvalidReference) as info:
        parse_raw_reference(text)
    assert info.value.reason == RAW_INVALID[text]
    assert info.value.subject == text


# -- ParseNormalizedNamed (TestValidateReferenceName, TestValidateRemoteName) ------------------

NORMALIZED_VALID = [
    "docker/docker", "library/debian", "debian", "localhost/library/debian", "localhost/debian",
    "LOCALDOMAIN/library/debian", "LOCALDOMAIN/debian", "docker.io/docker/docker", "docker.io/library/debian",
    "docker.io/debian", "index.docker.io/docker/docker", "index.docker.io/library/debian", "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker", "127.0.0.1:5000/library/debian", "127.0.0.1:5000/debian", "192.168.0.1",
    "192.168.0.1:80", "192.168.0.1:8/debian", "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker", "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "Docker/docker", "DOCKER/docker",
    "docker-rules/docker", "docker---rules/docker", "doc/docker", "d/docker", "jess/t", "dock__er/docker",
]

NORMALIZED_INVALID = [
    "https://github.com/docker/docker", "docker/Docker", "-docker", "-docker/docker", "-docker.io/docker/docker",
    "docker///docker", "docker.io/docker/Docker", "docker.io/docker///docker", "[fc00::1]", "[fc00::1]:5000",
    "fc00::1:5000/debian", "[fe80::1%eth0]:5000/debian", "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "docker-/docker", "-docker-/docker",
    "____/____", "_docker/_docker", "dock..er/docker", "dock_.er/docker", "dock-.er/docker", "docker/",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
]


@pytest.mark.parametrize("text", NORMALIZED_VALID)
def test_normalized_valid(text):
    ref = parse_normalized_named(text)
    assert parse_normalized_named(str(ref)) == ref  # the normalized form is a fixed point


@pytest.mark.parametrize("text", NORMALIZED_INVALID)
def test_normalized_invalid(text):
    with pytest.raises(InvalidReference) as info:
        parse_normalized_named(text)
    assert info.value.subject == text
    assert str(info.value).startswith(f'Error parsing reference: "{text}" is not a valid repository/tag: ')


# -- Familiar names and full names (TestParseRepositoryInfo) ------------------------------------

# (path, familiar name, full name, an ambiguous spelling or "", domain)
REPOSITORY_INFO = [
    ("fooo", "localhost/fooo", "localhost/fooo", "localhost/fooo", "localhost"),
    ("fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost"),
    ("fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN"),
    ("fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN/fooo/bar", "LOCALDOMAIN"),
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase", "", "127.0.0.1:8000"),
    ("privatebase", "127.0.0.1:8000/privatebase", "127.0.0.1:8000/privatebase", "", "127.0.0.1:8000"),
    ("private/moonbase", "example.com/private/moonbase", "example.com/private/moonbase", "", "example.com"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
    ("private/moonbase", "example.com:8000/private/moonbase", "example.com:8000/private/moonbase", "",
     "example.com:8000"),
    ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", "", "example.com:8000"),
    ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base",
     "index.docker.io/library/ubuntu-12.04-base", "docker.io"),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
    ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
]


@pytest.mark.parametrize("path,familiar,full,ambiguous,domain", REPOSITORY_INFO)
def test_repository_info(path, familiar, full, ambiguous, domain):
    for spelling in filter(None, (familiar, full, ambiguous)):
        ref = parse_normalized_named(spelling)
        assert (ref.path, ref.familiar_name, str(ref), ref.domain) == (path, familiar, full, domain)


@pytest.mark.parametrize("text,domain,path", [
    ("test.com/foo", "test.com", "foo"), ("test_com/foo", "docker.io", "test_com/foo"),
    ("docker/migrator", "docker.io", "docker/migrator"), ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"), ("foo", "docker.io", "library/foo"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo"), ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ("docker.io/foo", "docker.io", "library/foo"), ("docker.io/library/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
])
def test_normalized_split_hostname(text, domain, path):
    ref = parse_normalized_named(text)
    assert (ref.domain, ref.path) == (domain, path)


def test_tag_and_digest_kept_together():
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    ref = parse_normalized_named(short)
    assert str(ref) == "docker.io/library/" + short
    assert ref.is_tagged and ref.is_digested
    assert ref.familiar == short


# -- parse_reference: ParseNormalizedNamed + TagNameOnly -----------------------------------------

@pytest.mark.parametrize("text,full,familiar,familiar_name", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "busybox"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest", "user/app"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest", "localhost/app"),
    ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest", "localhost:5000/app"),
    ("ghcr.io/o/r", "ghcr.io/o/r:latest", "ghcr.io/o/r:latest", "ghcr.io/o/r"),
    (f"host:5000/ns/app:tag@sha256:{HEX}", f"host:5000/ns/app:tag@sha256:{HEX}", f"host:5000/ns/app:tag@sha256:{HEX}",
     "host:5000/ns/app"),
    (f"redis@sha256:{HEX}", f"docker.io/library/redis@sha256:{HEX}", f"redis@sha256:{HEX}", "redis"),
    ("192.168.0.1:80", "docker.io/library/192.168.0.1:80", "192.168.0.1:80", "192.168.0.1"),
    ("dbcc1", "docker.io/library/dbcc1:latest", "dbcc1:latest", "dbcc1"),
    (HEX[:-1], f"docker.io/library/{HEX[:-1]}:latest", f"{HEX[:-1]}:latest", HEX[:-1]),
])
def test_parse_reference(text, full, familiar, familiar_name):
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar == familiar
    assert ref.familiar_name == familiar_name
    assert str(ref) == ref.name + (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar) == ref


def test_reference_name_and_flags():
    ref = parse_reference("busybox")
    assert ref.name == "docker.io/library/busybox"
    assert ref.tag == "latest" and not ref.is_digested
    assert parse_normalized_named("busybox").tag == ""
    assert parse_reference(f"busybox@sha256:{HEX}").tag == ""  # a digest needs no default tag
    assert parse_reference(f"busybox@sha256:{HEX}").is_digested


@pytest.mark.parametrize("text,expected", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:latest", "docker.io/library/busybox:latest"),
    (f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
    ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
    (f"gcr.io/library/busybox:latest@sha256:{HEX}", f"gcr.io/library/busybox@sha256:{HEX}"),
])
def test_docker_ref(text, expected):
    assert str(parse_normalized_named(text).docker_ref()) == expected


@pytest.mark.parametrize("text,message", [
    ("Busybox", 'Error parsing reference: "Busybox" is not a valid repository/tag: invalid reference format: '
                "repository name (library/Busybox) must be lowercase"),
    ("user/App:1", 'Error parsing reference: "user/App:1" is not a valid repository/tag: invalid reference format: '
                   "repository name (user/App) must be lowercase"),
    ("busybox:", 'Error parsing reference: "busybox:" is not a valid repository/tag: invalid reference format '
                 "(the tag after ':' is empty)"),
    ("", 'Error parsing reference: "" is not a valid repository/tag: invalid reference format '
         "(the reference is empty)"),
    ("busy:box:latest", 'Error parsing reference: "busy:box:latest" is not a valid repository/tag: '
                        "invalid reference format (a path component is lowercase letters and digits, separated by "
                        "'.', '_', '__' or dashes, and starts and ends with a letter or digit)"),
    ("x:" + "a" * 129, f'Error parsing reference: "x:{"a" * 129}" is not a valid repository/tag: '
                       "invalid reference format (a tag is at most 128 characters, this one has 129)"),
    ("x:-tag", 'Error parsing reference: "x:-tag" is not a valid repository/tag: invalid reference format '
               "(a tag is letters, digits, '_', '.' and '-', and cannot start with '.' or '-')"),
    ("x@sha256:abc", 'Error parsing reference: "x@sha256:abc" is not a valid repository/tag: '
                     "invalid reference format (a digest is <algorithm>:<hex>, with at least 32 hexadecimal digits)"),
    ("x@sha256:" + "A" * 64, f'Error parsing reference: "x@sha256:{"A" * 64}" is not a valid repository/tag: '
                             "invalid checksum digest format"),
    ("x@sha256:" + "a" * 63, f'Error parsing reference: "x@sha256:{"a" * 63}" is not a valid repository/tag: '
                             "invalid checksum digest length"),
    ("x@md5:" + "a" * 32, f'Error parsing reference: "x@md5:{"a" * 32}" is not a valid repository/tag: '
                          "unsupported digest algorithm"),
    ("alpine as build", 'Error parsing reference: "alpine as build" is not a valid repository/tag: '
                        "invalid reference format (a reference cannot contain whitespace)"),
    ("alpine AS build", 'Error parsing reference: "alpine AS build" is not a valid repository/tag: '
                        "invalid reference format: repository name (library/alpine AS build) must be lowercase"),
    ("https://ghcr.io/o/r", 'Error parsing reference: "https://ghcr.io/o/r" is not a valid repository/tag: '
                            "invalid reference format (a reference has no URL scheme)"),
    ("example.com/" + "a" * 256, f'Error parsing reference: "example.com/{"a" * 256}" is not a valid '
                                 "repository/tag: repository name must not be more than 255 characters"),
    (HEX, f'Error parsing reference: "{HEX}" is not a valid repository/tag: invalid repository name ({HEX}), '
          "cannot specify 64-byte hexadecimal strings"),
])
def test_error_messages(text, message):
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert str(info.value) == message
    assert info.value.subject == text
    assert isinstance(info.value, ImageError)


def test_name_length_limit_is_on_the_path():
    assert parse_reference("example.com/" + "a" * 255).path == "a" * 255
    long_domain = "a" * 300 + ".com/x"
    assert parse_reference(long_domain).domain == "a" * 300 + ".com"


def test_with_tag_and_digest():
    ref = parse_reference("test.com:8000/foo")
    assert str(ref.with_tag("TAG5")) == "test.com:8000/foo:TAG5"
    assert str(ref.with_digest(f"sha256:{HEX}").with_tag("t")) == f"test.com:8000/foo:t@sha256:{HEX}"
    assert str(ref.with_digest(f"sha256:{HEX}").name_only()) == "test.com:8000/foo"
    with pytest.raises(InvalidReference) as info:
        parse_reference("busybox").with_tag("-foo")
    assert info.value.reason == "invalid tag format"
    with pytest.raises(InvalidReference) as info:
        parse_reference("busybox").with_digest("foo")
    assert info.value.reason == "invalid digest format"
    with pytest.raises(InvalidReference):
        validate_tag("a" * 129)
    assert validate_tag("a" * 128) == "a" * 128


def test_reference_is_a_frozen_value():
    ref = parse_reference("busybox")
    assert ref == Reference("docker.io", "library/busybox", "latest")
    assert hash(ref) == hash(Reference("docker.io", "library/busybox", "latest"))
    with pytest.raises(AttributeError):
        ref.tag = "x"


def test_tagged_is_tag_name_only():
    assert str(parse_normalized_named("alpine").tagged()) == "docker.io/library/alpine:latest"
    digested = parse_normalized_named(f"alpine@sha256:{HEX}")
    assert digested.tagged() is digested


# -- image IDs (ParseAnyReference, Docker's ID lookups) -----------------------------------------

def test_image_ids():
    assert is_image_id(HEX) and is_image_id(f"sha256:{HEX}")
    assert not is_image_id(HEX[:12]) and not is_image_id("busybox") and not is_image_id(HEX.upper())
    full = parse_image_id(f"sha256:{HEX}")
    assert full == ImageIdPrefix(HEX) and full.full and full.digest == f"sha256:{HEX}"
    short = parse_image_id(HEX[:12])
    assert not short.full and short.digest == "" and str(short) == f"sha256:{HEX[:12]}"
    assert short.matches(f"sha256:{HEX}") and not short.matches("sha256:" + "0" * 64)
    for bad in ("", "xyz", HEX + "0", "sha512:abc", "ABC", "sha256:"):
        with pytest.raises(InvalidReference):
            parse_image_id(bad)


@pytest.mark.parametrize("text,reference,id_prefix", [
    (HEX, None, HEX),                                       # 64 hex: an ID, never a name
    (f"sha256:{HEX}", None, HEX),
    ("dbcc1", "docker.io/library/dbcc1:latest", "dbcc1"),  # both: the store tries the name first
    ("sha256:dbcc1", "docker.io/library/sha256:dbcc1", "dbcc1"),
    ("busybox", "docker.io/library/busybox:latest", None),
    ("DBCC1", None, None),
])
def test_parse_lookup(text, reference, id_prefix):
    if reference is None and id_prefix is None:
        with pytest.raises(InvalidReference):
            parse_lookup(text)
        return
    found = parse_lookup(text)
    assert (str(found.reference) if found.reference else None) == reference
    assert (found.id_prefix.hex if found.id_prefix else None) == id_prefix


# -- properties ----------------------------------------------------------------------------------

_component = st.from_regex(r"\A[a-z0-9]{1,5}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,5}){0,2}\Z")
_domain = st.one_of(st.just(""), st.from_regex(r"\A[a-z0-9]{1,6}\.[a-z]{2,4}(?::[0-9]{1,5})?\Z"),
                    st.just("localhost:5000"))
_tag = st.one_of(st.just(""), st.from_regex(r"\A\w[\w.-]{0,20}\Z", fullmatch=True).filter(str.isascii))


@settings(max_examples=150, deadline=None)
@given(_domain, st.lists(_component, min_size=1, max_size=3), _tag, st.booleans())
def test_property_normalized_round_trip(domain, components, tag, digested):
    text = "/".join(([domain] if domain else []) + components)
    text += f":{tag}" if tag else ""
    text += f"@sha256:{HEX}" if digested else ""
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar) == ref
    assert ref.tag == (tag or ("" if digested else "latest"))
