"""The numbers in the docs come from code: each eval block equals its rendering from the committed results file."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streamer.evaluation import report

ROOT = Path(__file__).resolve().parents[2]
MODEL_CARD = Path("streamer/adapters/smollm2-135m-trades/MODEL_CARD.md")


@pytest.mark.parametrize("document", [Path("README.md"), MODEL_CARD])
def test_readme_and_model_card_carry_the_gold_test_block(document):
    assert "gold_test" in report.block_names((ROOT / document).read_text())
    assert report.results_path("gold_test", ROOT).is_file()


def test_committed_blocks_match_their_committed_results():
    rendered = report.render_documents(ROOT)
    assert rendered, "no document carries an eval block"
    for path, text in rendered.items():
        assert path.read_text() == text, (
            f"{path.relative_to(ROOT)}: an eval block differs from its docs/results/eval/*.json; "
            "run `streamer eval --render-docs` (or re-run the eval with --update-docs)")


def test_the_block_quotes_the_command_and_the_numbers_of_its_results_file():
    payload = orjson.loads(report.results_path("gold_test", ROOT).read_bytes())
    block = report.render_block(payload, "gold_test")
    assert payload["command"][1:3] == ["eval", "--gold"]
    assert "streamer eval --gold" in block
    for config in payload["configs"]:
        metrics = config["metrics"]
        assert f"`{config['name']}`" in block
        assert f"({metrics['exact_match_count']}/{metrics['n']})" in block
    assert "../../../docs/results/eval/gold_test.json" in report.render_block(payload, "gold_test", MODEL_CARD)


def test_the_silent_target_row_is_rendered_only_for_results_that_measured_it():
    """Results written before `review_for_silent_target` existed keep their blocks unchanged."""
    payload = orjson.loads(report.results_path("gold_test", ROOT).read_bytes())
    for config in payload["configs"]:
        config["metrics"].pop("review_for_silent_target", None)
    label = "| flag rate that keeps silent errors at or under 0.5% |"
    assert label not in report.render_block(payload, "gold_test")
    for config in payload["configs"]:
        config["metrics"]["review_for_silent_target"] = {"target": 0.005, "threshold": 0.9938, "flag_rate": 0.467}
    row = next(line for line in report.render_block(payload, "gold_test").splitlines() if line.startswith(label))
    assert row.count("46.7% at threshold 0.9938") == len(payload["configs"])


BODY = "| a | b |"


@pytest.mark.parametrize("text, expected", [
    ("intro\n<!-- eval:x:start -->\n<!-- eval:x:end -->\nafter\n",
     "intro\n<!-- eval:x:start -->\n| a | b |\n<!-- eval:x:end -->\nafter\n"),
    ("<!-- eval:x:start -->\nold numbers\nmore\n<!-- eval:x:end -->",
     "<!-- eval:x:start -->\n| a | b |\n<!-- eval:x:end -->"),
    ("<!-- eval:y:start -->\nkept\n<!-- eval:y:end -->\n<!-- eval:x:start -->stale<!-- eval:x:end -->\n",
     "<!-- eval:y:start -->\nkept\n<!-- eval:y:end -->\n<!-- eval:x:start -->\n| a | b |\n<!-- eval:x:end -->\n"),
])
def test_replace_block(text, expected):
    once = report.replace_block(text, "x", BODY)
    assert once == expected
    assert report.replace_block(once, "x", BODY) == once


@pytest.mark.parametrize("text, message", [
    ("no markers at all", "no <!-- eval:x:start --> marker"),
    ("<!-- eval:x:start -->\nno end", "no <!-- eval:x:end --> marker"),
    ("<!-- eval:x:end -->\n<!-- eval:x:start -->", "comes before"),
    ("<!-- eval:x:start --><!-- eval:x:end --><!-- eval:x:start --><!-- eval:x:end -->", "must each appear once"),
    ("<!-- eval:other:start --><!-- eval:other:end -->", "no <!-- eval:x:start --> marker"),
])
def test_replace_block_refuses_missing_or_repeated_markers(text, message):
    with pytest.raises(report.DocsError, match="README.md: .*" + message.replace("(", r"\(")):
        report.replace_block(text, "x", BODY, "README.md")


def test_render_documents_names_a_block_without_results(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "README.md").write_text("<!-- eval:hand_dev:start -->\n<!-- eval:hand_dev:end -->\n")
    with pytest.raises(report.DocsError, match="README.md: block 'hand_dev' has no results file"):
        report.render_documents(tmp_path)
    with pytest.raises(report.DocsError, match="no document has a <!-- eval:gold_test:start --> block"):
        report.documents_with_block("gold_test", tmp_path)


def test_update_documents_rewrites_a_block_from_its_results_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- eval:gold_test:start -->\nhand-typed 99%\n<!-- eval:gold_test:end -->\n")
    results = report.results_path("gold_test", tmp_path)
    results.parent.mkdir(parents=True)
    results.write_bytes(report.results_path("gold_test", ROOT).read_bytes())
    assert report.update_documents(tmp_path) == [readme]
    assert "hand-typed" not in readme.read_text() and "streamer eval --gold" in readme.read_text()
    assert report.update_documents(tmp_path) == []


@pytest.mark.parametrize("command, expected", [
    (["/usr/bin/streamer", "eval", "--gold", "g.jsonl", "--config", "a:b=c"],
     "streamer eval --gold g.jsonl --config a:b=c"),
    (["streamer", "eval", "--gold", "my file.jsonl"], "streamer eval --gold 'my file.jsonl'"),
    (["/src/streamer/__main__.py", "eval", "--render-docs"], "streamer eval --render-docs"),  # python -m streamer
    (["streamer", "eval"] + ["--config", "x" * 50] * 3,
     "streamer eval --config " + "x" * 50 + (" \\\n    --config " + "x" * 50) * 2),
])
def test_command_line(command, expected):
    assert report.command_line(command) == expected


def test_block_name_is_the_gold_file_stem():
    assert report.block_name(Path("datasets/splits/gold_test.jsonl")) == "gold_test"
    with pytest.raises(report.DocsError):
        report.block_name(Path("data/ bad name.jsonl"))


BENCH_ROWS = {"throughput_msg_s": 5.0, "ratio_to_prefill": 0.5, "prefill_tokens_per_s (256 in one batch)": 1000,
              "latency_ms_p50": 1300.0, "latency_ms_p95": 1400.0, "peak_rss_mb": 344.0}


def test_a_bench_run_is_recorded_under_its_label_and_rendered_as_a_row(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "README.md").write_text("<!-- eval:throughput:start -->\n<!-- eval:throughput:end -->\n")
    report.record_bench(BENCH_ROWS, ["streamer", "bench", "--batch", "8"], "a", root=tmp_path)
    report.record_bench({**BENCH_ROWS, "throughput_msg_s": 2.0}, ["streamer", "bench", "--batch", "1"], "b", root=tmp_path)
    source = report.record_bench({**BENCH_ROWS, "throughput_msg_s": 6.0}, ["streamer", "bench"], "a", root=tmp_path)
    payload = orjson.loads(source.read_bytes())
    assert [(r["label"], r["rows"]["throughput_msg_s"]) for r in payload["runs"]] == [("a", 6.0), ("b", 2.0)]
    assert source.with_suffix(".png").is_file()
    block = report.render_block(payload, "throughput")
    assert "| 1. a | 6.00 | 0.50 of 1000 tok/s | 1.30 s / 1.40 s |" in block
    assert "2. `streamer bench --batch 1`" in block
    rendered = report.render_documents(tmp_path)[tmp_path / "README.md"]
    assert block in rendered


def _config(name: str, by_tag: dict) -> dict:
    return {"name": name, "metrics": {"by_tag": by_tag}}


@pytest.mark.parametrize("configs, expected", [
    ([_config("default", {})], []),                                           # an untagged gold file: no table
    ([_config("default", {"fx": {"n": 3, "exact_match": 1.0, "silent_error_rate": 0.0}})], []),  # no class tag
    ([_config("default", {"swap_ccy": {"n": 4, "exact_match": 0.75, "silent_error_rate": 0.25},
                          "exit_phrasing": {"n": 2, "exact_match": 1.0, "silent_error_rate": 0.0}}),
      _config("no-second", {"swap_ccy": {"n": 4, "exact_match": 0.75, "silent_error_rate": 0.5},
                            "exit_phrasing": {"n": 2, "exact_match": 1.0, "silent_error_rate": 0.0}})],
     ["| phrasing class: exact / silent | default | no-second |", "|---|---:|---:|",
      "| exit_phrasing (2) | 100.0% / 0.0% | 100.0% / 0.0% |", "| swap_ccy (4) | 75.0% / 25.0% | 75.0% / 50.0% |", ""]),
])
def test_the_phrasing_class_table(configs, expected):
    assert report._class_table(configs) == expected
