"""`streamer eval --update-docs` and `--render-docs` on a scratch checkout, with the rule-based parser (no model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streamer.cli import main
from streamer.evaluation import report

ROOT = Path(__file__).resolve().parents[2]
GOLD_TEST = ROOT / "datasets" / "splits" / "gold_test.jsonl"
BLOCK = "<!-- eval:gold_test:start -->\nnumbers typed by hand\n<!-- eval:gold_test:end -->\n"


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A scratch repository root with a README that carries the gold_test block."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pyproject.toml").write_text("")
    (root / "README.md").write_text("# demo\n\n" + BLOCK + "\nafter\n")
    monkeypatch.setattr(report, "REPO_ROOT", root)
    return root


def _eval(*args: str):
    return CliRunner().invoke(main, ["eval", *args])


def test_update_docs_publishes_the_run_and_rewrites_the_block(checkout, tmp_path):
    gold = tmp_path / "gold_test.jsonl"
    shutil.copyfile(GOLD_TEST, gold)
    out = tmp_path / "run"
    result = _eval("--gold", str(gold), "--config", "rules:baseline", "--out-dir", str(out), "--update-docs")
    assert result.exit_code == 0, result.output
    committed = checkout / "docs" / "results" / "eval" / "gold_test.json"
    assert committed.read_bytes() == (out / "eval.json").read_bytes()
    assert committed.with_suffix(".png").is_file()
    readme = (checkout / "README.md").read_text()
    assert "numbers typed by hand" not in readme
    assert readme.startswith("# demo\n\n<!-- eval:gold_test:start -->\n") and readme.endswith("\nafter\n")
    rules = orjson.loads(committed.read_bytes())["configs"][0]["metrics"]
    assert f"({rules['exact_match_count']}/{rules['n']})" in readme
    assert "--update-docs" in readme

    (checkout / "README.md").write_text(readme.replace("| rules |", "| edited |"))
    result = _eval("--render-docs")
    assert result.exit_code == 0, result.output
    assert (checkout / "README.md").read_text() == readme


def test_docs_name_publishes_a_second_comparison_on_the_same_file(checkout, tmp_path):
    (checkout / "README.md").write_text(BLOCK + "<!-- eval:gold_test-rules:start -->\n<!-- eval:gold_test-rules:end -->\n")
    result = _eval("--gold", str(GOLD_TEST), "--baseline", "--out-dir", str(tmp_path / "run"), "--update-docs",
                   "--docs-name", "gold_test-rules")
    assert result.exit_code == 0, result.output
    assert (checkout / "docs" / "results" / "eval" / "gold_test-rules.json").is_file()
    assert not (checkout / "docs" / "results" / "eval" / "gold_test.json").exists()
    readme = (checkout / "README.md").read_text()
    assert "numbers typed by hand" in readme and "docs/results/eval/gold_test-rules.json" in readme


@pytest.mark.parametrize("args, message", [
    (["--gold", str(GOLD_TEST), "--baseline", "--docs-name", "x"], "add --update-docs"),
    (["--gold", str(GOLD_TEST), "--baseline", "--limit", "5", "--update-docs"], "drop --limit"),
    (["--render-docs", "--gold", str(GOLD_TEST)], "--render-docs runs nothing; drop --gold"),
    (["--render-docs", "--n-threads", "2"], "drop --n-threads"),
    (["--baseline"], "Missing option '--gold'"),
])
def test_usage_errors(checkout, args, message):
    result = _eval(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_update_docs_without_markers_fails_before_any_parsing(checkout, tmp_path):
    gold = tmp_path / "hand_dev.jsonl"
    shutil.copyfile(GOLD_TEST, gold)
    result = _eval("--gold", str(gold), "--baseline", "--out-dir", str(tmp_path / "run"), "--update-docs")
    assert result.exit_code == 1
    assert "no document has a <!-- eval:hand_dev:start --> block" in result.output
    assert not (tmp_path / "run").exists()
