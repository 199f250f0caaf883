"""docker-compatible output helpers: sizes, durations, tables and --format templates."""

from __future__ import annotations

import pytest

from builder.errors import UsageError
from builder.format import Template, human_duration, human_size, render_rows, table


@pytest.mark.parametrize("size, text", [(0, "0B"), (512, "512B"), (4_264_000, "4.26MB"), (1_000, "1kB"),
                                        (1_234_567_890, "1.23GB"), (77_800_000, "77.8MB")])
def test_human_size_matches_docker(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("seconds, text", [(0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"),
                                           (60, "About a minute"), (3599, "59 minutes"), (5400, "2 hours"),
                                           (3600 * 47, "47 hours"), (3600 * 24 * 3, "3 days"),
                                           (3600 * 24 * 20, "2 weeks"), (3600 * 24 * 90, "3 months"),
                                           (3600 * 24 * 800, "2 years")])
def test_human_duration_matches_docker(seconds, text):
    assert human_duration(seconds) == text


def test_table_alignment_like_docker_tabwriter():
    text = table([["REPOSITORY", "TAG", "IMAGE ID"], ["busybox", "latest", "a416a98b71e2"]])
    assert text.splitlines() == ["REPOSITORY   TAG       IMAGE ID", "busybox      latest    a416a98b71e2"]


ROWS = [{"Repository": "busybox", "Tag": "latest", "ID": "a416a98b71e2", "Labels": {"a": "1", "b": "2"},
         "Env": ["A=1", "B=2"], "Size": "4.26MB"}]


def test_templates():
    assert Template("{{.Repository}}:{{.Tag}}").render(ROWS[0]) == "busybox:latest"
    assert Template("{{json .Labels}}").render(ROWS[0]) == '{"a":"1","b":"2"}'
    assert Template("{{.Tag | upper}}").render(ROWS[0]) == "LATEST"
    assert Template("{{join .Env \",\"}}").render(ROWS[0]) == "A=1,B=2"
    assert Template("{{index .Labels \"b\"}}").render(ROWS[0]) == "2"
    assert Template("{{range .Env}}[{{.}}]{{end}}").render(ROWS[0]) == "[A=1][B=2]"
    assert Template("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}").render(ROWS[0]) == "a=1;b=2;"
    assert Template("{{if .Labels}}yes{{else}}no{{end}}").render(ROWS[0]) == "yes"
    assert Template("{{if .Missing}}{{end}}") is not None


def test_template_errors_are_usage_errors():
    with pytest.raises(UsageError):
        Template("{{.Nope}}").render(ROWS[0])
    with pytest.raises(UsageError):
        Template("{{range .Env}}").render(ROWS[0])
    with pytest.raises(UsageError):
        Template("{{frobnicate .Env}}").render(ROWS[0])


def test_render_rows_modes():
    columns = [("Repository", "REPOSITORY"), ("Tag", "TAG"), ("ID", "IMAGE ID")]
    assert render_rows(None, ROWS, columns).splitlines()[1] == "busybox      latest    a416a98b71e2"
    assert render_rows(None, ROWS, columns, quiet=True, quiet_field="ID") == "a416a98b71e2"
    assert render_rows("json", ROWS, columns).startswith('{"Repository":"busybox"')
    assert render_rows("table {{.Repository}}\\t{{.ID}}", ROWS, columns).splitlines() == [
        "REPOSITORY   IMAGE ID", "busybox      a416a98b71e2"]
