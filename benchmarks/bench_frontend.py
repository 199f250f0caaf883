"""Front-end benchmark: how fast pybuild parses a large Dockerfile, next to other Dockerfile parsers.

    python benchmarks/bench_frontend.py [--instructions 5000] [--runs 15] [--seed 42]

1. Generates a deterministic Dockerfile of N instructions (a realistic mix: stages with FROM, RUN with
   continuations, COPY with flags, ENV/LABEL pairs, ARG, EXPOSE, WORKDIR, USER, CMD/ENTRYPOINT in JSON,
   HEALTHCHECK, a few heredocs, comments and blank lines).
2. Times, in this process, after a warm-up, best and median of ``--runs``:
   * our parser layer, ``builder.dockerfile.syntax.parse_text`` (pre-pass + Lark LALR -> syntax tree);
   * our instruction layer, ``builder.dockerfile.instructions.parse_dockerfile`` (if importable);
   * BuildKit 0.12.5's Go parser through the PyPI package ``dockerfile`` (``parse_string``; if installed);
   * the PyPI package ``dockerfile-parse`` (``DockerfileParser``: set ``.content``, read ``.structure``).
3. Measures in fresh interpreters (median of 5): ``import lark``, importing our parser modules, and
   building our Lark parser (``grammar.dockerfile_parser()``) from the table cache and without it.
4. Conformance on BuildKit's 33 parser testfiles: ours and ``dockerfile`` (converted to the dump format,
   with and without adding the ENV/LABEL separators 0.12.5 does not produce), and how many files
   ``dockerfile-parse`` reads as the same instructions with the same (whitespace-normalised) arguments.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.dockerfile.dump import dump_tree  # noqa: E402
from builder.dockerfile.syntax import parse_text  # noqa: E402
from builder.dockerfile.words import SPLIT_WS, go_quote  # noqa: E402

CONFORMANCE = Path(os.environ.get("PYBUILD_CONFORMANCE_DIR", REPO.parent / "shared" / "conformance" / "buildkit"))
TESTFILES = CONFORMANCE / "frontend" / "dockerfile" / "parser" / "testfiles"


# --------------------------------------------------------------------------------------------------
# The input
# --------------------------------------------------------------------------------------------------

PACKAGES = ["curl", "git", "ca-certificates", "build-essential", "python3", "python3-pip", "jq", "unzip",
            "libssl-dev", "pkg-config", "make", "gcc", "openssh-client", "tzdata", "locales", "vim"]


def generate(n: int, seed: int = 42) -> str:
    """A deterministic Dockerfile of ``n`` instructions, valid for BuildKit and for our instruction layer."""
    r = random.Random(seed)
    out: list[str] = ["# syntax=docker/dockerfile:1", "ARG BASE=debian:bookworm-slim", "ARG VERSION=1.0"]
    count = 2
    stage = 0
    stages: list[str] = []

    def emit(text: str):
        nonlocal count
        out.append(text)
        count += 1

    while count < n:
        if count == 2 or r.random() < 0.006:
            name = f"stage{stage}"
            base = "${BASE}" if not stages or r.random() < 0.7 else r.choice(stages)
            out.append("")
            emit(f"FROM {base} AS {name}")
            stages.append(name)
            stage += 1
            continue
        x = r.random()
        if x < 0.25:
            pkgs = r.sample(PACKAGES, r.randrange(2, 7))
            lines = ["RUN apt-get update \\", "    && apt-get install -y --no-install-recommends \\"]
            lines += [f"       {p} \\" for p in pkgs]
            lines += ["    && rm -rf /var/lib/apt/lists/*"]
            if r.random() < 0.3:
                lines.insert(0, f"# install {' '.join(pkgs[:2])}")
            out.extend(lines[:-1])
            emit(lines[-1])
        elif x < 0.33:
            mount = r.choice(["", "--mount=type=cache,target=/root/.cache ", "--network=none ",
                              "--mount=type=bind,source=.,target=/src "])
            emit(f"RUN {mount}set -eux; make -j$(nproc) target{r.randrange(100)} && echo done > /tmp/m{count}")
        elif x < 0.47:
            flags = r.choice(["", "--chown=1000:1000 ", "--chmod=0644 ", "--link ", "--chown=app:app --chmod=755 "])
            if stages[:-1] and r.random() < 0.25:
                flags += f"--from={r.choice(stages[:-1])} "
            src = r.choice(["src/", "package.json package-lock.json", "requirements.txt", "app/*.py", "."])
            emit(f"COPY {flags}{src} /app/{r.choice(['', 'lib/', 'bin/', 'static/'])}")
        elif x < 0.57:
            pairs = " ".join(f"K{r.randrange(1000)}=\"value {r.randrange(100)}\"" for _ in range(r.randrange(1, 4)))
            emit(f"ENV {pairs}")
        elif x < 0.64:
            emit(f'LABEL org.opencontainers.image.version="$VERSION" com.example.n{r.randrange(1000)}="x y"')
        elif x < 0.69:
            emit(f"ARG A{r.randrange(1000)}={r.randrange(10)}")
        elif x < 0.73:
            emit(f"EXPOSE {r.randrange(1, 65535)}/{r.choice(['tcp', 'udp'])} {r.randrange(1, 65535)}")
        elif x < 0.79:
            emit(f"WORKDIR /app/{r.choice(['src', 'build', 'out', 'data'])}")
        elif x < 0.81:
            emit(f"USER {r.choice(['app', '1000:1000', 'root'])}")
        elif x < 0.86:
            emit(f'CMD ["/app/bin/server", "--port", "{r.randrange(8000, 9000)}", "--verbose"]')
        elif x < 0.89:
            emit('ENTRYPOINT ["/usr/bin/tini", "--"]')
        elif x < 0.92:
            port = r.randrange(8000, 9000)
            emit(f"HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -f http://localhost:{port}/ || exit 1")
        elif x < 0.935:
            out.append(f"RUN <<EOF{count}")
            out.extend(["set -e", f"echo building {count}", "make install"])
            emit(f"EOF{count}")
        elif x < 0.945:
            out.append(f"COPY <<CONF /etc/app/conf{count}.ini")
            out.extend(["[main]", f"id = {count}", "mode = $MODE"])
            emit("CONF")
        elif x < 0.96:
            emit("ONBUILD RUN echo triggered")
        elif x < 0.98:
            emit("VOLUME /data /cache")
        else:
            out.append(r.choice(["", "# a comment", "#"]))
            emit("STOPSIGNAL SIGTERM")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------

def timed(fn, runs: int, warmup: int = 2) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def peers(text: str) -> list[tuple[str, object]]:
    """(label, callable) for every parser we can run here."""
    out: list[tuple[str, object]] = [("pybuild parse_text (parser layer)", lambda: parse_text(text))]
    try:
        from builder.dockerfile.instructions import parse_dockerfile
    except ImportError:
        out.append(("pybuild parse_dockerfile (instruction layer)", None))
    else:
        out.append(("pybuild parse_dockerfile (instruction layer)", lambda: parse_dockerfile(text)))
    try:
        from builder.dockerfile.evaluate import evaluate_dockerfile
        from builder.dockerfile.instructions import parse_dockerfile as _parse
    except ImportError:
        out.append(("pybuild whole front end (+ evaluation/expansion)", None))
    else:
        out.append(("pybuild whole front end (+ evaluation/expansion)",
                    lambda: evaluate_dockerfile(_parse(text))))
    try:
        import dockerfile
    except ImportError:
        out.append(("dockerfile 3.4.0 (BuildKit 0.12.5, Go)", None))
    else:
        out.append(("dockerfile 3.4.0 (BuildKit 0.12.5, Go)", lambda: dockerfile.parse_string(text)))
    try:
        from dockerfile_parse import DockerfileParser
    except ImportError:
        out.append(("dockerfile-parse 2.0.1 (regex)", None))
    else:
        def run_dfp():
            parser = DockerfileParser(fileobj=io.BytesIO())
            parser.content = text
            return parser.structure

        out.append(("dockerfile-parse 2.0.1 (regex)", run_dfp))
    return out


STARTUP = r"""
import json, sys, time
t0 = time.perf_counter()
import lark
t1 = time.perf_counter()
from builder.dockerfile import grammar, syntax, prepass
t2 = time.perf_counter()
grammar.dockerfile_parser()
t3 = time.perf_counter()
syntax.parse_text("FROM a\nRUN b\n")
t4 = time.perf_counter()
print(json.dumps({"import lark": t1 - t0, "import parser modules": t2 - t1, "build parser": t3 - t2,
                  "first parse": t4 - t3}))
"""


def startup(runs: int = 5) -> dict:
    """Fresh-interpreter costs, with the Lark table cache warm, and with an empty cache directory."""
    results = {}
    for label, cold in (("cached tables", False), ("no table cache", True)):
        samples = []
        for _ in range(runs):
            env = dict(os.environ)
            tmp = None
            if cold:
                tmp = tempfile.TemporaryDirectory()
                env["XDG_CACHE_HOME"] = tmp.name
            else:
                subprocess.run([sys.executable, "-c", STARTUP], cwd=REPO, env=env, check=True, capture_output=True)
            done = subprocess.run([sys.executable, "-c", STARTUP], cwd=REPO, env=env, check=True,
                                  capture_output=True, text=True)
            samples.append(json.loads(done.stdout))
            if tmp is not None:
                tmp.cleanup()
        results[label] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    return results


# --------------------------------------------------------------------------------------------------
# Conformance on BuildKit's parser testfiles
# --------------------------------------------------------------------------------------------------

def _go_dump(commands, with_separators: bool) -> str:
    lines = []
    for c in commands:
        cmd = (c.cmd or "").lower()
        values = list(c.value)
        target = (c.sub_cmd or c.cmd or "").lower()
        if with_separators and target in ("env", "label") and values:
            sep = "=" if "=" in _first_word_after_flags(c.original, nested=c.sub_cmd is not None) else ""
            values = [x for i in range(0, len(values), 2) for x in (values[i], values[i + 1], sep)]
        inner = " ".join(go_quote(v) for v in values)
        if c.sub_cmd is not None:
            inner = f"({c.sub_cmd.lower()}{' ' + inner if inner else ''})"
        parts = [cmd]
        if c.flags:
            parts.append("[" + " ".join(go_quote(f) for f in c.flags) + "]")
        if inner:
            parts.append(inner)
        lines.append("(" + " ".join(parts) + ")\n")
    return "".join(lines)


def _first_word_after_flags(original: str, nested: bool) -> str:
    words = [x for x in SPLIT_WS.split(original.strip()) if x]
    words = words[2:] if nested else words[1:]
    while words and words[0].startswith("--"):
        words = words[1:]
    return words[0] if words else ""


def conformance() -> dict:
    cases = sorted(d for d in TESTFILES.iterdir() if (d / "result").is_file()) if TESTFILES.is_dir() else []
    report = {"cases": len(cases), "pybuild": 0, "dockerfile (as is)": 0, "dockerfile (+ separators)": 0,
              "dockerfile misses from NUL-cut strings": 0, "dockerfile errors": 0,
              "dockerfile-parse (instructions)": 0,
              "dockerfile-parse (instructions + arguments)": 0}
    try:
        import dockerfile
    except ImportError:
        dockerfile = None
    try:
        from dockerfile_parse import DockerfileParser
    except ImportError:
        DockerfileParser = None
    for case in cases:
        data = (case / "Dockerfile").read_bytes()
        text = data.decode("utf-8", "surrogateescape")
        expected = (case / "result").read_text(encoding="utf-8")
        tree = parse_text(text)
        if dump_tree(tree) == expected:
            report["pybuild"] += 1
        reference = [(n.keyword, _rest(n.original)) for n in tree.nodes]
        if dockerfile is not None:
            try:
                commands = dockerfile.parse_string(text)
            except Exception:  # GoParseError, or text the wrapper cannot take
                report["dockerfile errors"] += 1
            else:
                report["dockerfile (as is)"] += _go_dump(commands, False) == expected
                same = _go_dump(commands, True) == expected
                report["dockerfile (+ separators)"] += same
                # the wrapper hands strings over as C strings: a "\u0000" cuts them short
                report["dockerfile misses from NUL-cut strings"] += not same and "\\x00" in expected
        if DockerfileParser is not None:
            parser = DockerfileParser(fileobj=io.BytesIO(), env_replace=False)
            parser.content = text
            found = [(s["instruction"].lower(), _norm(s["value"])) for s in parser.structure
                     if s["instruction"] != "COMMENT"]
            if [k for k, _ in found] == [k for k, _ in reference]:
                report["dockerfile-parse (instructions)"] += 1
                if found == reference:
                    report["dockerfile-parse (instructions + arguments)"] += 1
    return report


def _norm(s: str) -> str:
    return " ".join(s.split())


def _rest(original: str) -> str:
    """The (logical) argument text after the keyword, whitespace-normalised."""
    parts = original.strip().split(None, 1)
    return _norm(parts[1]) if len(parts) > 1 else ""


# --------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instructions", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--startup-runs", type=int, default=5)
    args = ap.parse_args(argv)

    text = generate(args.instructions, args.seed)
    tree = parse_text(text)
    print(f"Input: {len(tree.nodes)} instructions, {text.count(chr(10))} lines, {len(text.encode()) / 1024:.0f} KiB "
          f"(seed {args.seed}); {args.runs} runs after warm-up\n")
    print(f"{'parser':<46} {'best ms':>9} {'median ms':>10} {'µs/instr':>9}")
    for label, fn in peers(text):
        if fn is None:
            print(f"{label:<46} {'not installed / not importable':>30}")
            continue
        best, median = timed(fn, args.runs)
        print(f"{label:<46} {best * 1e3:9.1f} {median * 1e3:10.1f} {median * 1e6 / len(tree.nodes):9.2f}")

    print(f"\nFresh interpreter (median of {args.startup_runs}), ms:")
    results = startup(args.startup_runs)
    keys = list(next(iter(results.values())))
    print(f"{'':<16}" + "".join(f"{k:>24}" for k in keys))
    for label, row in results.items():
        print(f"{label:<16}" + "".join(f"{row[k] * 1e3:24.1f}" for k in keys))

    print("\nConformance on BuildKit's parser testfiles:")
    for key, value in conformance().items():
        print(f"  {key:<46} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
