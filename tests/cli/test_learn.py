"""`streamer learn init | list | rollback`: exit codes, the table, one-line errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streamer.cli import main
from streamer.learning.registry import Registry


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.delenv("STREAMER_REGISTRY_DIR", raising=False)
    return CliRunner()


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_init_list_rollback(runner, tmp_path):
    path = tmp_path / "registry"
    result = runner.invoke(main, ["learn", "init", "--registry", str(path), "--by", "lead"])
    assert result.exit_code == 0, result.output
    assert "current version v0" in result.output
    registry = Registry(path)
    registry.add("v1", registry.adapter_path("v0"), parent="v0", eval={"f1": 0.912, "note": "text is left out"})
    registry.promote("v1", by="lead")

    listed = runner.invoke(main, ["learn", "list", "--registry", str(path)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if line.count("│") > 2}
    assert set(rows) == {"v0", "v1"}
    assert "*" in rows["v1"] and "*" not in rows["v0"].split("│")[3]
    assert "f1=0.912" in rows["v1"] and "text is left out" not in rows["v1"]
    assert registry.get("v1").adapter_sha256[:12] in rows["v1"]

    result = runner.invoke(main, ["learn", "rollback", "v0", "--registry", str(path), "--by", "lead"])
    assert result.exit_code == 0, result.output
    assert "v1 -> v0" in result.output and registry.current().version == "v0"


def test_registry_comes_from_the_environment(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMER_REGISTRY_DIR", str(tmp_path / "registry"))
    assert runner.invoke(main, ["learn", "init"]).exit_code == 0
    assert runner.invoke(main, ["learn", "list"]).exit_code == 0
    assert Registry(tmp_path / "registry").current().version == "v0"


@pytest.mark.parametrize("arguments, problem", [
    (["learn", "list"], "no model registry: give --registry DIR or set STREAMER_REGISTRY_DIR"),
    (["learn", "list", "--registry", "{missing}"], "no registry.json"),
    (["learn", "init", "--registry", "{made}"], "already exists"),
    (["learn", "rollback", "v0", "--registry", "{made}", "--by", "lead"], "version v0: is current already"),
    (["learn", "rollback", "v7", "--registry", "{made}", "--by", "lead"], "version v7: not in the registry"),
    (["learn", "rollback", "v0", "--registry", "{missing}", "--by", "lead"], "no registry.json"),
    (["learn", "init", "--registry", "{missing}", "--adapter", "{missing}/a.gguf"], "adapter file not found"),
])
def test_errors_are_one_line(runner, tmp_path, arguments, problem):
    made = tmp_path / "made"
    Registry.init(made, by="lead")
    arguments = [a.format(made=made, missing=tmp_path / "missing") for a in arguments]
    assert problem in one_line_error(runner.invoke(main, arguments))


def test_rollback_needs_who(runner, tmp_path):
    Registry.init(tmp_path / "registry", by="lead")
    result = runner.invoke(main, ["learn", "rollback", "v0", "--registry", str(tmp_path / "registry")])
    assert result.exit_code == 2 and "--by" in result.output
