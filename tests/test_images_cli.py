"""The image commands end to end, as a user runs them: ``pybuild --root DIR import|images|tag|rmi|inspect|
history|image prune|system df``, checked for what they print, and compared with what docker.io 20.10
prints for the same image (same columns, same alignment, same JSON shape).

Known, deliberate differences from docker, asserted as such:

* sizes: docker reports a layer's unpacked content size (overlay2's DiffSize), pybuild its tar size;
  SIZE cells are compared for empty layers only (``0B`` in both);
* docker pads the last column of a table row with blanks when its cell is empty; pybuild strips them;
* ``image inspect`` has no ``Container``/``ContainerConfig``/``VirtualSize`` (legacy fields that
  docker 25 dropped too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from image_fixtures import EPOCH, columns, fails, ok, pb, pb_all

EPOCH_ENV = {"SOURCE_DATE_EPOCH": str(EPOCH), "TZ": "UTC"}
ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
SHORT_RE = re.compile(r"^[0-9a-f]{12}$")


def pbx(root, *args, **kw):
    env = dict(EPOCH_ENV)
    env.update(kw.pop("env", None) or {})
    return pb(root, *args, env=env, **kw)


def rstripped(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines())


@pytest.fixture(scope="module")
def root(tmp_path_factory, busybox_tar) -> Path:
    """A root with three images of one busybox layer: two tagged (one from a file, one from stdin), one dangling."""
    root = tmp_path_factory.mktemp("images-cli") / "root"
    out = ok(pbx(root, "import", str(busybox_tar), "pbtest/busybox", "--change", 'CMD ["sh"]'))
    assert ID_RE.match(out.strip()) and out.endswith("\n")
    IDS["pbtest/busybox"] = out.strip()
    IDS["pbtest/envbox:1"] = ok(pbx(root, "import", "-", "pbtest/envbox:1", "--change", "ENV A=1", "--change",
                                    "ENV B=${A}-two", "-m", "from stdin", input=busybox_tar.read_bytes())).strip()
    IDS["dangling"] = ok(pbx(root, "import", str(busybox_tar), "--change", 'ENTRYPOINT ["/bin/echo"]')).strip()
    return root


IDS: dict[str, str] = {}  # image IDs of ``root``, as import printed them


# ----------------------------------------------------------------------------------------------
# import


def test_import_from_file_and_stdin_applies_changes(root):
    busybox, envbox = json.loads(ok(pb(root, "inspect", "pbtest/busybox", "pbtest/envbox:1")))
    assert busybox["Id"] == IDS["pbtest/busybox"] and envbox["Id"] == IDS["pbtest/envbox:1"]
    assert busybox["RepoTags"] == ["pbtest/busybox:latest"]
    assert busybox["Config"]["Cmd"] == ["sh"]
    assert busybox["Config"]["Env"] is None
    assert envbox["Config"]["Env"] == ["A=1", "B=1-two"]  # ENV expands against the env set so far
    assert envbox["Config"]["Cmd"] is None
    assert busybox["Comment"] == "Imported from -" and envbox["Comment"] == "from stdin"
    # same rootfs bytes, file or stdin: the same layer
    assert busybox["RootFS"] == envbox["RootFS"]
    assert len(busybox["RootFS"]["Layers"]) == 1
    assert busybox["Created"] == envbox["Created"] == "2020-01-01T00:00:00Z"
    assert busybox["Id"] != envbox["Id"]


BAD_CHANGES = [
    ("RUN echo hi", "'RUN' is not a valid change command"),
    ("FROM busybox", "'FROM' is not a valid change command"),
    ("ENV", "ENV requires at least one argument"),
    ("EXPOSE", "EXPOSE requires at least one argument"),
]


def test_import_bad_change_is_a_clear_error(root, busybox_tar):
    results = pb_all(root, *[["import", str(busybox_tar), "bad:1", "--change", "CMD [\"sh\"]", "--change", change]
                             for change, _ in BAD_CHANGES], ["import", "/nonexistent/rootfs.tar"])
    for (change, message), result in zip(BAD_CHANGES, results):
        err = fails(result)
        assert message in err, change
        assert err.count("\n") == 1  # one line, no traceback
    err = fails(results[-1])
    assert "/nonexistent/rootfs.tar" in err and "No such file or directory" in err
    assert ok(pb(root, "images", "-q", "--no-trunc")).split() == [  # nothing was imported
        IDS["dangling"], IDS["pbtest/busybox"], IDS["pbtest/envbox:1"]]


# ----------------------------------------------------------------------------------------------
# images


def test_images_table_quiet_and_all(root):
    out, all_, quiet, full = map(ok, pb_all(root, ["images"], ["images", "-a"], ["images", "-q"],
                                            ["images", "-q", "--no-trunc"]))
    names, rows = columns(out)
    assert names == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert [(r["REPOSITORY"], r["TAG"]) for r in rows] == [
        ("<none>", "<none>"), ("pbtest/busybox", "latest"), ("pbtest/envbox", "1")]
    ids = {r["REPOSITORY"]: r["IMAGE ID"] for r in rows}
    assert all(SHORT_RE.match(i) for i in ids.values()) and len(set(ids.values())) == 3
    assert ids["pbtest/busybox"] == IDS["pbtest/busybox"][7:19]
    assert len({r["CREATED"] for r in rows}) == 1 and rows[0]["CREATED"].endswith("years ago")
    assert all(re.match(r"^\d+(\.\d+)?MB$", r["SIZE"]) for r in rows)
    # -a shows intermediate images too; imported images have no parents, so the same rows
    assert all_ == out
    quiet, full = quiet.split(), full.split()
    assert quiet == [r["IMAGE ID"] for r in rows]
    assert [f[7:19] for f in full] == quiet and all(ID_RE.match(f) for f in full)


def test_images_filters(root):
    ok(pb(root, "tag", "pbtest/busybox", "busybox:1.36"))
    try:
        results = pb_all(root, ["images", "--filter", "dangling=true"], ["images", "-f", "dangling=false"],
                         ["images", "--filter", "reference=pbtest/bus*"], ["images", "--filter", "reference=bus*"],
                         ["images", "--filter", "reference=*/*:1"], ["images", "pbtest/envbox"],
                         ["images", "--filter", "colour=blue"])
    finally:
        ok(pb(root, "rmi", "busybox:1.36"))
    dangling, tagged, by_glob, short_glob, by_tag, positional = (columns(ok(r))[1] for r in results[:6])
    assert [(r["REPOSITORY"], r["TAG"], r["IMAGE ID"]) for r in dangling] == [
        ("<none>", "<none>", IDS["dangling"][7:19])]
    assert sorted(r["REPOSITORY"] for r in tagged) == ["busybox", "pbtest/busybox", "pbtest/envbox"]
    assert [r["REPOSITORY"] for r in by_glob] == ["pbtest/busybox"]
    # docker's globs: ``*`` does not cross a ``/``, so bus* is busybox but not pbtest/busybox
    assert [(r["REPOSITORY"], r["TAG"], r["IMAGE ID"]) for r in short_glob] == [
        ("busybox", "1.36", IDS["pbtest/busybox"][7:19])]
    assert [r["REPOSITORY"] for r in by_tag] == ["pbtest/envbox"]
    assert [r["REPOSITORY"] for r in positional] == ["pbtest/envbox"]
    assert "invalid filter 'colour'" in fails(results[6])


def test_images_formats(root):
    as_json, names, table, bad, size = pb_all(root, ["images", "--format", "json"],
                                              ["images", "--format", "{{.Repository}}:{{.Tag}}"],
                                              ["images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}"],
                                              ["images", "--format", "{{.Nope}}"],
                                              ["inspect", "--format", "{{.Size}}", "pbtest/busybox"])
    rows = [json.loads(line) for line in ok(as_json).splitlines()]
    size = int(ok(size))  # all three images are the one busybox layer
    assert len(rows) == 3
    for row in rows:
        assert set(row) == {"Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize",
                            "Size", "Tag", "UniqueSize", "VirtualSize"}
        assert row["CreatedAt"] == "2020-01-01 00:00:00 +0000 UTC"
        assert row["Digest"] == "<none>"  # imported: never pushed or pulled, no manifest digest
        # SIZE has 3 significant digits, VirtualSize 4 (docker's HumanSizeWithPrecision(3) / HumanSize)
        assert (row["Size"], row["VirtualSize"]) == (f"{size / 1e6:.3g}MB", f"{size / 1e6:.4g}MB")
    assert ok(names).splitlines() == ["<none>:<none>", "pbtest/busybox:latest", "pbtest/envbox:1"]
    table = ok(table).splitlines()
    assert table[0] == "REPOSITORY       TAG       IMAGE ID"
    assert table[2] == f"pbtest/busybox   latest    {IDS['pbtest/busybox'][7:19]}"
    assert "can't evaluate field Nope" in fails(bad)


# ----------------------------------------------------------------------------------------------
# tag and rmi


def test_tag(root):
    ok(pb(root, "tag", "pbtest/busybox", "pbtest/copy:v2"))
    try:
        listed, missing, bad = pb_all(root, ["images", "pbtest/copy"], ["tag", "nosuch", "x:1"],
                                      ["tag", "pbtest/busybox", "Bad:Name"])
        rows = columns(ok(listed))[1]
        assert [(r["TAG"], r["IMAGE ID"]) for r in rows] == [("v2", IDS["pbtest/busybox"][7:19])]
        assert "No such image: nosuch" in fails(missing)
        assert "Bad:Name" in fails(bad)
    finally:
        ok(pb(root, "rmi", "pbtest/copy:v2"))


def test_rmi(tmp_path, busybox_tar):
    root = tmp_path / "root"
    full_id = ok(pbx(root, "import", str(busybox_tar), "a:1")).strip()
    short = full_id[7:19]
    ok(pb(root, "tag", "a:1", "b:1"))
    ok(pb(root, "tag", short, "c"))
    # by tag, while other tags remain: untag only
    assert ok(pb(root, "rmi", "b:1")) == "Untagged: b:1\n"
    # by ID, with two tags: docker's conflict error, nothing removed; an unknown image (both read-only)
    conflict, unknown = pb_all(root, ["rmi", short], ["rmi", "nosuch"])
    assert fails(conflict) == (f"error: conflict: unable to delete {short} (must be forced) - image is referenced "
                               "in multiple repositories\n")
    assert "No such image: nosuch" in fails(unknown)
    assert ok(pb(root, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")).split("\n") == [
        f"a:1 {short}", f"c:latest {short}", ""]
    # forced: every tag goes, then the image, then (by GC) its layer
    out = ok(pb(root, "rmi", "-f", short))
    assert out == f"Untagged: a:1\nUntagged: c:latest\nDeleted: {full_id}\n"
    assert ok(pb(root, "images", "-a", "-q")) == ""
    assert not any((root / "layers").iterdir())
    assert not any((root / "blobs" / "sha256").iterdir())
    # the last tag by name: untagged and deleted in one go
    ok(pbx(root, "import", str(busybox_tar), "d:1"))
    assert ok(pb(root, "image", "rm", "d:1")) == f"Untagged: d:1\nDeleted: {full_id}\n"


# ----------------------------------------------------------------------------------------------
# inspect


def test_inspect_shapes_and_templates(root):
    results = pb_all(root, ["image", "inspect", "pbtest/busybox"], ["inspect", "--format", "{{.Id}}", "pbtest/busybox"],
                     ["inspect", "-f", "{{json .Config}}", "pbtest/busybox"], ["inspect", IDS["pbtest/busybox"][7:19]],
                     ["inspect", "-f", "{{.Id}} {{.RepoTags}}", "pbtest/busybox", "pbtest/envbox:1"],
                     ["inspect", "pbtest/busybox", "nosuch"])
    [doc] = json.loads(ok(results[0]))
    assert list(doc) == ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "DockerVersion", "Author",
                         "Config", "Architecture", "Os", "Size", "GraphDriver", "RootFS", "Metadata"]
    assert ID_RE.match(doc["Id"])
    assert doc["RootFS"]["Type"] == "layers" and all(ID_RE.match(d) for d in doc["RootFS"]["Layers"])
    assert Path(doc["GraphDriver"]["Data"]["LowerDir"], "bin", "busybox").is_file()
    assert ok(results[1]) == doc["Id"] + "\n" == IDS["pbtest/busybox"] + "\n"
    assert json.loads(ok(results[2])) == doc["Config"]
    assert json.loads(ok(results[3])) == [doc]
    two = ok(results[4]).splitlines()
    assert two == [f"{doc['Id']} [pbtest/busybox:latest]", f"{IDS['pbtest/envbox:1']} [pbtest/envbox:1]"]
    result = results[5]
    assert result.returncode == 1 and "Traceback" not in result.stderr.decode()
    assert result.stderr.decode() == "error: No such object: nosuch\n"
    assert [d["Id"] for d in json.loads(result.stdout)] == [doc["Id"]]


# ----------------------------------------------------------------------------------------------
# history


def test_history(root):
    full_id = IDS["pbtest/envbox:1"]
    name = "pbtest/envbox:1"
    out, no_trunc, quiet, quiet_full, raw, raw_long, missing = pb_all(
        root, ["history", name], ["history", "--no-trunc", name], ["history", "-q", name],
        ["history", "-q", "--no-trunc", name], ["history", "-H=false", name], ["history", "--human=false", name],
        ["history", "nosuch"])
    names, rows = columns(ok(out))
    assert names == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert len(rows) == 1
    assert rows[0]["IMAGE"] == full_id[7:19] and rows[0]["CREATED BY"] == "" and rows[0]["COMMENT"] == "from stdin"
    assert rows[0]["CREATED"].endswith("years ago")
    assert columns(ok(no_trunc))[1][0]["IMAGE"] == full_id
    assert ok(quiet) == full_id[7:19] + "\n"
    assert ok(quiet_full) == full_id + "\n"
    raw_names, raw_rows = columns(ok(raw))
    assert raw_names[1] == "CREATED AT"
    assert raw_rows[0]["CREATED AT"] == "2020-01-01T00:00:00Z" and raw_rows[0]["SIZE"].isdigit()
    assert ok(raw_long) == ok(raw)
    assert "No such image: nosuch" in fails(missing)


# ----------------------------------------------------------------------------------------------
# save and load: user mistakes are reported, not thrown


def test_save_and_load_errors(root, tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive\n" * 100)
    unwritable, missing, bad_input, no_input = pb_all(
        root, ["save", "-o", "/nonexistent/dir/out.tar", "pbtest/busybox"], ["save", "-o", str(tmp_path / "x.tar"),
                                                                            "nosuch"],
        ["load", "-i", str(garbage)], ["load", "-i", str(tmp_path / "absent.tar")])
    empty = pb(root, "load", input=b"")
    assert fails(unwritable) == "error: cannot write /nonexistent/dir/out.tar: No such file or directory\n"
    assert "No such image: nosuch" in fails(missing)
    assert not list(tmp_path.glob("x.tar*"))
    assert fails(bad_input).startswith("error: not an image archive")
    assert fails(no_input) == f"error: cannot open {tmp_path / 'absent.tar'}: No such file or directory\n"
    assert fails(empty) == "error: not an image archive: empty file\n"  # stdin was empty


# ----------------------------------------------------------------------------------------------
# prune and df


def test_image_prune_and_system_df(tmp_path, busybox_tar):
    root = tmp_path / "root"
    tagged = ok(pbx(root, "import", str(busybox_tar), "keep:1")).strip()
    dangling = ok(pbx(root, "import", str(busybox_tar), "--change", "USER nobody")).strip()
    size = json.loads(ok(pb(root, "inspect", tagged)))[0]["Size"]
    df = ok(pb(root, "system", "df"))
    names, rows = columns(df)
    assert names == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [r["TYPE"] for r in rows] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    images = rows[0]
    assert images["TOTAL"] == "2" and images["ACTIVE"] == "0"
    # the layer both images share counts once (docker's LayersSize); units.HumanSize: 4 significant digits
    expected = f"{size / 1e6:.4g}MB"
    assert images["SIZE"] == expected and images["RECLAIMABLE"] == f"{expected} (100%)"
    assert df.splitlines()[0] == "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"

    out = ok(pb(root, "image", "prune", "-f"))
    # the layer is shared: only the image's config (a few hundred bytes) is freed
    assert re.fullmatch(f"Deleted Images:\ndeleted: {dangling}\n\nTotal reclaimed space: \\d+B\n", out)
    assert ok(pb(root, "images", "-q", "--no-trunc")) == tagged + "\n"
    assert ok(pb(root, "image", "prune", "-f")) == "Total reclaimed space: 0B\n"

    out = ok(pb(root, "image", "prune", "-a", "-f")).splitlines()
    assert out[:3] == ["Deleted Images:", "untagged: keep:1", f"deleted: {tagged}"]
    assert out[3] == "" and re.match(r"^Total reclaimed space: \d+(\.\d+)?[kM]B$", out[4])
    assert ok(pb(root, "images", "-a")) == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    assert columns(ok(pb(root, "system", "df")))[1][0] == {"TYPE": "Images", "TOTAL": "0", "ACTIVE": "0",
                                                           "SIZE": "0B", "RECLAIMABLE": "0B"}


# ----------------------------------------------------------------------------------------------
# against docker


@pytest.fixture(scope="module")
def in_docker(root, dockerd, tmp_path_factory):
    """pbtest/busybox saved by pybuild and loaded into the test daemon; a docker-built child of it,
    saved by docker, removed and loaded back (so docker too shows its parents as <missing>), and
    loaded into pybuild."""
    work = tmp_path_factory.mktemp("vs-docker")
    archive = work / "busybox.tar"
    ok(pb(root, "save", "-o", str(archive), "pbtest/busybox"))
    assert dockerd.out("load", "-i", str(archive)) == "Loaded image: pbtest/busybox:latest\n"
    context = work / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM pbtest/busybox\n"
        "ENV X=1\n"
        "RUN echo a\tb > /f && echo a command line longer than forty-five characters > /g\n"
        "LABEL l=v\n")
    dockerd.docker("build", "--network", "none", "-q", "-t", "pbtest/built:1", str(context))
    built = work / "built.tar"
    dockerd.docker("save", "-o", str(built), "pbtest/built:1")
    dockerd.docker("rmi", "pbtest/built:1")
    dockerd.docker("load", "-i", str(built))
    dockerd.built_root = work / "built-root"  # kept apart: the other tests count the images of ``root``
    assert ok(pb(dockerd.built_root, "load", "-i", str(built))) == "Loaded image: pbtest/built:1\n"
    return dockerd


def test_images_table_matches_docker(root, in_docker):
    env = {"TZ": "UTC"}
    formats = ("{{.Repository}}:{{.Tag}} {{.ID}} {{.CreatedAt}} {{.Digest}} {{.Containers}}",
               "table {{.Repository}}\t{{.Tag}}\t{{.ID}}")
    commands = [["images", "pbtest/busybox"], ["images", "--no-trunc", "pbtest/busybox"],
                ["images", "-q", "pbtest/busybox"]] + [["images", "--format", f, "pbtest/busybox"] for f in formats]
    commands.append(["images", "--format", "{{json .}}", "pbtest/busybox"])
    for args, result in zip(commands, pb_all(root, *commands, env=env)):
        theirs, ours = in_docker.out(*args), ok(result)
        if "{{json .}}" in args:  # the same fields and values, sizes aside
            theirs, ours = json.loads(theirs), json.loads(ours)
            for row in (theirs, ours):
                del row["Size"], row["VirtualSize"]
            assert ours == theirs
            continue
        if args[1] in ("-q", "--format"):
            assert ours == theirs
            continue
        theirs, ours = rstripped(theirs), rstripped(ours)
        assert ours.splitlines()[0] == theirs.splitlines()[0]  # same header, same column offsets
        (their_names, their_rows), (our_names, our_rows) = columns(theirs), columns(ours)
        assert our_names == their_names == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
        for r in their_rows + our_rows:
            r.pop("SIZE")  # content size vs tar size (see the module docstring)
        assert our_rows == their_rows


REFERENCE_PATTERNS = ["*", "*box", "*/*box", "pbtest/*", "pbtest/busybox", "pbtest/busybox:lat*", "*/*:1",
                      "busybox", "*/busybox:?atest", "pbtest/[a-c]usybox"]


def test_reference_filter_matches_docker(root, in_docker):
    """Go's path.Match semantics: ``*`` stops at ``/``; a pattern matches ``repo:tag`` or ``repo``."""
    fmt = "{{.Repository}}:{{.Tag}}"
    commands = [["images", "--filter", f"reference={p}", "--format", fmt] for p in REFERENCE_PATTERNS]
    ours = [set(ok(r).split()) for r in pb_all(root, *commands)]
    theirs = [set(in_docker.out(*c).split()) for c in commands]
    shared = "pbtest/busybox:latest"  # the one image both stores hold
    assert [shared in s for s in ours] == [shared in s for s in theirs] == [
        False, False, True, True, True, True, False, False, True, True]
    assert ours[REFERENCE_PATTERNS.index("*/*:1")] == {"pbtest/envbox:1"}
    assert all("<none>:<none>" not in s for s in ours)  # unnamed images match no pattern


def test_history_matches_docker(root, in_docker):
    fmt = "table {{.ID}}\t{{.CreatedBy}}\t{{.Comment}}"
    for name, where in (("pbtest/busybox", root), ("pbtest/built:1", in_docker.built_root)):
        commands = [["history", *extra, name] for extra in ([], ["--no-trunc"], ["--format", fmt],
                                                            ["--no-trunc", "--format", fmt], ["--format", "{{json .}}"])]
        default, no_trunc, formatted, formatted_no_trunc, as_json = (ok(r) for r in pb_all(where, *commands))
        their_json = [json.loads(line) for line in in_docker.out(*commands[4]).splitlines()]
        our_json = [json.loads(line) for line in as_json.splitlines()]
        for row in their_json + our_json:
            del row["Size"]
            if name == "pbtest/built:1":
                del row["CreatedSince"]
        assert our_json == their_json
        assert rstripped(formatted) == rstripped(in_docker.out(*commands[2]))
        assert rstripped(formatted_no_trunc) == rstripped(in_docker.out(*commands[3]))
        for ours, args in ((default, commands[0]), (no_trunc, commands[1])):
            their_names, their_rows = columns(in_docker.out(*args))
            our_names, our_rows = columns(ours)
            assert our_names == their_names
            assert len(our_rows) == len(their_rows)
            for ours_row, theirs_row in zip(our_rows, their_rows):
                if theirs_row["SIZE"] == "0B":  # empty layers: 0B in both
                    assert ours_row["SIZE"] == "0B"
                ours_row.pop("SIZE"), theirs_row.pop("SIZE")
                if name == "pbtest/built:1":  # built seconds ago: "1 second ago" may tick between the two
                    ours_row.pop("CREATED"), theirs_row.pop("CREATED")
                assert ours_row == theirs_row
        if name == "pbtest/built:1":
            built = columns(default)[1]
            assert [r["IMAGE"] for r in built][1:] == ["<missing>"] * 3
            assert built[1]["CREATED BY"] == "/bin/sh -c echo a b > /f && echo a command l…"  # tab shown as a blank


def test_inspect_matches_docker(root, in_docker):
    [theirs] = json.loads(in_docker.out("image", "inspect", "pbtest/busybox"))
    [ours] = json.loads(ok(pb(root, "image", "inspect", "pbtest/busybox")))
    assert set(theirs) - set(ours) <= {"Container", "ContainerConfig", "VirtualSize"}
    assert set(ours) <= set(theirs)
    for key in ours:
        if key not in ("Size", "GraphDriver"):
            assert ours[key] == theirs[key], key
    [theirs] = json.loads(in_docker.out("image", "inspect", "pbtest/built:1"))
    [ours] = json.loads(ok(pb(in_docker.built_root, "image", "inspect", "pbtest/built:1")))
    for key in ("Id", "RepoTags", "Comment", "Created", "DockerVersion", "Author", "Config", "Architecture", "Os",
                "RootFS"):
        assert ours[key] == theirs[key], key


def test_rmi_conflict_and_prune_match_docker(root, in_docker, tmp_path, busybox_tar):
    image = in_docker.out("image", "inspect", "--format", "{{.Id}}", "pbtest/busybox").strip()
    in_docker.docker("tag", "pbtest/busybox", "pbtest/other:1")
    try:
        their_err = in_docker.docker("rmi", image[7:19], check=False).stderr.decode()
    finally:
        in_docker.docker("rmi", "pbtest/other:1")
    ok(pb(root, "tag", "pbtest/busybox", "pbtest/other:1"))
    try:
        our_err = fails(pb(root, "rmi", image[7:19]))
    finally:
        ok(pb(root, "rmi", "pbtest/other:1"))
    assert their_err.startswith("Error response from daemon: ")
    assert our_err == "error: " + their_err[len("Error response from daemon: "):]

    # a dangling image (saved by ID: no name) whose layer a tagged image shares, pruned by both
    fresh = tmp_path / "root"
    ok(pbx(fresh, "import", str(busybox_tar), "pbtest/busybox", "--change", 'CMD ["sh"]'))
    dangling = ok(pbx(fresh, "import", str(busybox_tar), "--change", "USER nobody")).strip()
    archive = tmp_path / "dangling.tar"
    ok(pb(fresh, "save", "-o", str(archive), dangling))
    assert in_docker.out("load", "-i", str(archive)) == f"Loaded image ID: {dangling}\n"
    theirs = in_docker.out("image", "prune", "-f").splitlines()
    ours = ok(pb(fresh, "image", "prune", "-f")).splitlines()
    assert ours[:-1] == theirs[:-1] == ["Deleted Images:", f"deleted: {dangling}", ""]
    assert ours[-1].startswith("Total reclaimed space: ") and theirs[-1].startswith("Total reclaimed space: ")


def test_system_df_header_matches_docker(root, in_docker):
    theirs = in_docker.out("system", "df").splitlines()
    ours = ok(pb(root, "system", "df")).splitlines()
    assert ours[0] == theirs[0]
    assert [line.split("   ")[0] for line in ours] == [line.split("   ")[0] for line in theirs]
