"""Step cache keys: sha256 over parent key, expanded instruction, used build args and input digests;
stable across processes and machines, and changing exactly when the step's meaning changes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builder.build.cachekey import (
    base_key, canonical_instruction, key_document, plan_key, scratch_key, stage_keys, step_key,
)
from builder.build.configstep import make_plan_context, plan_stage
from builder.dockerfile.instructions import parse_dockerfile
from builder.image.config import parse_config
from builder.image.platform import Platform

REPO = Path(__file__).resolve().parents[1]
BASE = parse_config((REPO / "tests" / "fixtures" / "build" / "_base" / "busybox-config.json").read_bytes())
BASE_KEY = base_key(BASE.digest)
KEY = re.compile(r"sha256:[0-9a-f]{64}\Z")

DOCKERFILE = """\
FROM busybox
ARG VERSION=1.0
ARG UNUSED
LABEL version=$VERSION
ENV APP=/srv/app
WORKDIR $APP
COPY conf/ ./conf/
RUN echo "$VERSION" > version.txt
CMD ["run"]
"""


def content_digest(root: Path, sources) -> dict:
    """What a caller hands in for COPY: a sha256 over each source's relative paths and bytes."""
    out = {}
    for source in sources:
        h = hashlib.sha256()
        base = root / source
        for path in sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]:
            h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
        out[source] = "sha256:" + h.hexdigest()
    return out


def keys_for(text: str, build_args=None, *, root: Path | None = None, base=BASE_KEY, filename="Dockerfile"):
    df = parse_dockerfile(text.encode(), filename)
    ctx = make_plan_context(df, build_args, build_platform=Platform("linux", "amd64"))
    plan = plan_stage(df, df.stages[0], ctx, base_image=BASE, layer=lambda s: "sha256:" + "0" * 64)

    def inputs(step):
        if step.instruction.keyword in ("COPY", "ADD"):
            if root is None:
                return {s: "sha256:" + "1" * 64 for s in step.instruction.sources}
            return content_digest(root, step.instruction.sources)
        return None

    return stage_keys(base, plan, inputs), plan


def make_context(root: Path, conf: str = "a=1\n") -> Path:
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.conf").write_text(conf)
    (root / "Dockerfile").write_text(DOCKERFILE)
    return root


# ----------------------------------------------------------------------------------------------


def test_keys_are_sha256_digests():
    keys, _ = keys_for(DOCKERFILE)
    assert len(keys) == 8 and all(KEY.match(k) for k in keys) and len(set(keys)) == 8
    assert KEY.match(BASE_KEY) and KEY.match(scratch_key(Platform("linux", "amd64")))


_CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
from test_build_cachekey import keys_for, DOCKERFILE
keys, _ = keys_for(DOCKERFILE, {{"VERSION": "2"}})
print(json.dumps(keys))
"""


def test_keys_are_stable_across_processes():
    here, _ = keys_for(DOCKERFILE, {"VERSION": "2"})
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", _CHILD.format(tests=str(REPO / "tests"))], env=env, cwd="/",
                             capture_output=True, check=True, timeout=120).stdout
        assert tuple(json.loads(out)) == here


def test_keys_do_not_depend_on_where_the_context_is(tmp_path):
    one = make_context(tmp_path / "one" / "ctx")
    two = make_context(tmp_path / "elsewhere" / "deeper" / "ctx")
    keys_one, plan = keys_for(DOCKERFILE, root=one, filename=str(one / "Dockerfile"))
    keys_two, _ = keys_for(DOCKERFILE, root=two, filename=str(two / "Dockerfile"))
    assert keys_one == keys_two
    # nothing of the host's paths, hashing or clock is in what was hashed
    documents = json.dumps([key_document(BASE_KEY, s.instruction, args=s.key_args) for s in plan.steps])
    assert str(tmp_path) not in documents and "xxh" not in documents.lower()
    changed = tmp_path / "three" / "ctx"
    make_context(changed, conf="a=2\n")
    keys_three, _ = keys_for(DOCKERFILE, root=changed)
    assert keys_three[:5] == keys_one[:5] and all(a != b for a, b in zip(keys_three[5:], keys_one[5:]))  # COPY on


def test_keys_ignore_spelling_comments_and_positions():
    same = """\
# a comment

from busybox
arg VERSION=1.0
ARG UNUSED
# another
LABEL "version"="$VERSION"
ENV APP /srv/app
WORKDIR ${APP}
COPY conf/ \\
     ./conf/
RUN echo "$VERSION" > version.txt
CMD [ "run" ]
"""
    assert keys_for(same)[0] == keys_for(DOCKERFILE)[0]


def test_keys_ignore_build_args_that_are_not_used():
    plain = keys_for(DOCKERFILE)[0]
    assert keys_for(DOCKERFILE, {"NOT_DECLARED": "x", "HTTP_PROXY": "http://proxy:3128"})[0] == plain
    # the same effective value, given or defaulted, is the same key
    assert keys_for(DOCKERFILE, {"VERSION": "1.0"})[0] == plain


def test_keys_change_from_the_changed_step_on():
    plain = keys_for(DOCKERFILE)[0]

    def first_change(keys):
        diffs = [i for i, (a, b) in enumerate(zip(keys, plain)) if a != b]
        assert diffs == list(range(diffs[0], len(plain))), "a change must carry to every later step"
        return diffs[0]

    assert first_change(keys_for(DOCKERFILE, {"VERSION": "2"})[0]) == 0            # ARG value
    assert first_change(keys_for(DOCKERFILE, {"UNUSED": "now set"})[0]) == 1        # its ARG resolves differently
    assert first_change(keys_for(DOCKERFILE.replace("/srv/app", "/opt/app"))[0]) == 3
    assert first_change(keys_for(DOCKERFILE.replace("> version.txt", ">> version.txt"))[0]) == 6
    assert first_change(keys_for(DOCKERFILE.replace('["run"]', '["serve"]'))[0]) == 7
    assert first_change(keys_for(DOCKERFILE, base=base_key("sha256:" + "2" * 64))[0]) == 0


def test_run_key_uses_the_args_in_scope():
    _, plan = keys_for(DOCKERFILE, {"UNUSED": "u"})
    run = next(s for s in plan.steps if s.instruction.keyword == "RUN")
    assert run.key_args == (("UNUSED", "u"), ("VERSION", "1.0"))
    label = next(s for s in plan.steps if s.instruction.keyword == "LABEL")
    assert label.key_args == (("VERSION", "1.0"),)
    env = next(s for s in plan.steps if s.instruction.keyword == "ENV")
    assert env.key_args == ()


def test_input_digests_must_be_sha256():
    _, plan = keys_for(DOCKERFILE)
    copy = next(s for s in plan.steps if s.instruction.keyword == "COPY")
    ok = plan_key(BASE_KEY, copy, inputs={"conf/": "sha256:" + "a" * 64})
    assert ok != plan_key(BASE_KEY, copy, inputs={"conf/": "sha256:" + "b" * 64})
    for bad in ("xxh64:0123456789abcdef", "sha256:ABC", "md5:" + "0" * 32, "/abs/path"):
        with pytest.raises(ValueError):
            plan_key(BASE_KEY, copy, inputs={"conf/": bad})


def test_base_is_keyed_by_digest_never_by_tag():
    assert base_key(BASE.digest) != base_key(BASE.digest, kind="manifest")
    for bad in ("busybox", "busybox:latest", "docker.io/library/busybox@sha256:" + "0" * 64, "sha256:xyz"):
        with pytest.raises(ValueError):
            base_key(bad)
    with pytest.raises(ValueError):
        step_key("busybox:latest", None)
    assert scratch_key(Platform("linux", "amd64")) != scratch_key(Platform("linux", "arm64"))


def test_canonical_instruction_leaves_out_source_positions():
    a = parse_dockerfile(b"FROM x\nENV A=1\n").stages[0].instructions[0]
    b = parse_dockerfile(b"FROM x\n\n\n# c\nENV A 1\n").stages[0].instructions[0]
    assert canonical_instruction(a) == canonical_instruction(b) == {
        "kind": "EnvInstruction", "pairs": [{"kind": "KeyValue", "key": "A", "value": "1"}]}


def test_cachekey_module_does_not_load_xxhash():
    code = "import sys, builder.build.cachekey, builder.build.configstep; print('xxhash' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60, cwd=REPO)
    assert out.stdout.strip() == b"False"
