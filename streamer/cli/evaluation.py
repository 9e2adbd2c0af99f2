"""`streamer eval`: score a parser configuration (or several, side by side) against a gold file."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import get_args

import click
from pydantic import ValidationError

from streamer.cli.options import load_parser, model_options, settings_from
from streamer.settings import AdapterMerge, CrossCheckScope

# --config keys and the Settings field each one sets.
CONFIG_KEYS = {"model": "model_path", "adapter": "adapter_path", "prompt": "prompt_version",
               "threshold": "confidence_threshold", "cross_check": "rules_cross_check", "trust": "cross_check_trust",
               "scope": "cross_check_scope", "merge": "adapter_merge", "second": "second_opinion"}
_SWITCH = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
_SCOPES = get_args(CrossCheckScope)
_MERGES = get_args(AdapterMerge)
_CONFIG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True)
class EvalConfig:
    """One named configuration: the rule-based baseline, or the model parser with setting overrides."""

    name: str
    baseline: bool = False
    overrides: dict = field(default_factory=dict)


def parse_config(text: str) -> EvalConfig:
    """'tuned:adapter=bundled,threshold=0.6,cross_check=off' | 'rules:baseline' | 'default' (no overrides)."""
    name, _, spec = text.partition(":")
    if not _CONFIG_NAME.fullmatch(name):
        raise click.BadParameter(f"{text!r}: NAME must be letters, digits, '_', '-' or '.' (at most 32)")
    spec = spec.strip()
    if spec == "baseline":
        return EvalConfig(name, baseline=True)
    overrides: dict = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in CONFIG_KEYS or not value:
            raise click.BadParameter(
                f"{text!r}: expected KEY=VALUE with KEY one of {', '.join(CONFIG_KEYS)}, or 'baseline'"
            )
        if key in ("threshold", "trust"):
            try:
                value = float(value)
            except ValueError:
                raise click.BadParameter(f"{text!r}: {key} must be a number, got {value!r}") from None
        if key == "cross_check":
            if value.lower() not in _SWITCH:
                raise click.BadParameter(f"{text!r}: cross_check must be on or off, got {value!r}")
            value = _SWITCH[value.lower()]
        if key == "merge" and value not in _MERGES:
            raise click.BadParameter(f"{text!r}: merge must be one of {', '.join(_MERGES)}, got {value!r}")
        if key == "scope" and value not in _SCOPES:
            raise click.BadParameter(f"{text!r}: scope must be {' or '.join(_SCOPES)}, got {value!r}")
        overrides[CONFIG_KEYS[key]] = Path(value) if key == "model" else value
    return EvalConfig(name, overrides=overrides)


def _parse_configs(ctx, param, values: tuple[str, ...]) -> list[EvalConfig]:
    configs = [parse_config(v) for v in values]
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise click.BadParameter(f"configuration names must be unique: {', '.join(duplicates)}")
    return configs


@click.command("eval")
@click.option("--gold", "gold_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Gold JSONL: {id, text, expected: {Trade fields}, timestamp?, ambiguous?, multiple_trades?}. "
                   "Required unless --render-docs.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N examples.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where eval.json, eval.md, eval.png and predictions.jsonl go (default runs/eval-<UTC time>).")
@click.option("--baseline", is_flag=True, help="Evaluate the rule-based parser (no model) instead of the model.")
@click.option("--config", "--compare", "configs", multiple=True, metavar="NAME:SPEC", callback=_parse_configs,
              help="A named configuration; repeat it to compare several side by side. SPEC is 'baseline' or "
                   "KEY=VALUE[,KEY=VALUE] with KEY in model, adapter, prompt, threshold, cross_check (on|off), "
                   "trust, scope (omissions|all), merge (off|q4_0|q5_0|...), second (bundled|none|PATH: the second-opinion "
                   "adapter); empty SPEC = the options given on the command line.")
@click.option("--update-docs", is_flag=True,
              help="After the run, copy eval.json and eval.png to docs/results/eval/<gold file stem>.json/.png and "
                   "rewrite the <!-- eval:<stem>:start/end --> blocks of README.md and the model card from it.")
@click.option("--docs-name", default=None, metavar="NAME",
              help="With --update-docs: publish as block and results file NAME instead of the gold file's stem "
                   "(a second comparison on the same file, e.g. hand_dev-second-opinion).")
@click.option("--render-docs", is_flag=True,
              help="Run nothing: rewrite every eval block in the docs from the committed docs/results/eval/*.json.")
@model_options
def eval_command(gold_path: Path | None, limit: int | None, out_dir: Path | None, baseline: bool,
                 configs: list[EvalConfig], update_docs: bool, docs_name: str | None, render_docs: bool,
                 **options) -> None:
    """Score the parser against a gold file: per-field P/R/F1, exact match, flags, calibration, speed.

    Prints a markdown table on stdout and writes eval.json (every number),
    eval.md, eval.png (per-field F1 and calibration curve) and predictions.jsonl
    (one line per message and configuration) to --out-dir.

    \b
    One configuration:
      streamer eval --gold datasets/gold.jsonl                  # default model + adapter
      streamer eval --gold datasets/gold.jsonl --adapter none   # the base model
      streamer eval --gold datasets/gold.jsonl --baseline       # rules, no model
    Compare mode, one column per --config (the model options above apply to
    every model configuration, a --config's KEY=VALUE overrides them):
      streamer eval --gold datasets/gold.jsonl --n-threads 2 \\
        --config base:adapter=none --config tuned:adapter=bundled \\
        --config fewshot:adapter=bundled,prompt=fewshot-v1 --config rules:baseline
    The numbers in the docs (README.md, the model card) come from here:
      streamer eval --gold datasets/splits/gold_test.jsonl ... --update-docs
      streamer eval --render-docs      # re-render them from docs/results/eval/
    """
    from rich.console import Console

    from streamer.evaluation import report
    from streamer.evaluation.harness import GoldFileError, load_gold

    given = {k: v for k, v in options.items() if v is not None}
    if render_docs:
        _render_docs(gold_path, limit, out_dir, baseline, configs, update_docs or docs_name, given)
        return
    if gold_path is None:
        raise click.UsageError("Missing option '--gold'.")
    if docs_name is not None and not update_docs:
        raise click.UsageError("--docs-name names what --update-docs publishes; add --update-docs")
    docs_block = _docs_block(gold_path, limit, docs_name) if update_docs else None
    if baseline and configs:
        raise click.UsageError("--baseline and --config do not mix; add --config NAME:baseline instead")
    if baseline and given:
        raise click.UsageError(f"--baseline runs no model; drop {', '.join(_flags(given))}")
    try:
        examples = load_gold(gold_path, limit)
    except GoldFileError as err:
        raise click.ClickException(str(err)) from None
    out_dir = out_dir or Path("runs") / f"eval-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise click.ClickException(f"cannot create {out_dir}: {err.strerror}") from None

    console = Console(stderr=True)
    configs = configs or [EvalConfig("baseline" if baseline else "model", baseline=baseline)]
    settings = {c.name: _settings_for(c, options) for c in configs if not c.baseline}
    runs = _evaluate_all(configs, settings, examples, console)
    _write_outputs(runs, gold_path, out_dir, console)
    if docs_block is not None:
        try:
            results = report.publish_results(out_dir / "eval.json", out_dir / "eval.png", docs_block)
            changed = report.update_documents(names=[docs_block])
        except report.DocsError as err:
            raise click.ClickException(str(err)) from None
        console.print(f"wrote {results}; rewrote the {docs_block} block in "
                      f"{', '.join(str(p) for p in changed) or 'no document (already current)'}", highlight=False)


def _docs_block(gold_path: Path, limit: int | None, docs_name: str | None = None) -> str:
    """The docs block --update-docs will write, checked before any model runs."""
    from streamer.evaluation import report

    if limit is not None:
        raise click.UsageError("--update-docs publishes numbers for the whole gold file; drop --limit")
    try:
        name = report.block_name(Path(f"{docs_name}.jsonl") if docs_name else gold_path)
        report.documents_with_block(name)
    except report.DocsError as err:
        raise click.ClickException(str(err)) from None
    return name


def _render_docs(gold_path, limit, out_dir, baseline, configs, update_docs, given: dict) -> None:
    from streamer.evaluation import report

    run_options = {"--gold": gold_path, "--limit": limit, "--out-dir": out_dir, "--baseline": baseline,
                   "--config": configs, "--update-docs": update_docs}
    extra = [flag for flag, value in run_options.items() if value] + _flags(given)
    if extra:
        raise click.UsageError(f"--render-docs runs nothing; drop {', '.join(extra)}")
    try:
        changed = report.update_documents()
    except report.DocsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"rewrote {', '.join(str(p) for p in changed)}" if changed else "docs already match docs/results/eval/",
               err=True)


def _flags(options: dict) -> list[str]:
    """The command-line flags of model options given as Settings field names."""
    names = {"model_path": "model", "adapter_path": "adapter", "confidence_threshold": "threshold",
             "rules_cross_check": "cross-check"}
    return ["--" + names.get(k, k.replace("_", "-")) for k in options]


def _settings_for(config: EvalConfig, options: dict):
    try:
        return settings_from(**{**options, **config.overrides})
    except ValidationError as err:
        first = err.errors()[0]
        raise click.ClickException(f"configuration {config.name}: {first['loc'][0]}: {first['msg']}") from None


def _evaluate_all(configs: list[EvalConfig], settings: dict, examples, console) -> list:
    """Each configuration in order; those that generate alike share one model and its generations.

    A model stays loaded only until the last configuration that uses it, so
    configurations on different models are not held in memory together.
    """
    from streamer.evaluation.harness import EvaluationRun, close_parser, run_parser
    from streamer.parsing.parser import GENERATION_SETTINGS
    from streamer.parsing.rules import BASELINE_VERSION, RuleBasedParser

    def key(config: EvalConfig) -> tuple | None:
        return None if config.baseline else tuple(getattr(settings[config.name], n) for n in GENERATION_SETTINGS)

    last_use = {key(c): i for i, c in enumerate(configs)}
    loaded: dict[tuple, tuple[str, object]] = {}  # generation key -> (first configuration, parser)
    runs = []
    for i, config in enumerate(configs):
        if config.baseline:
            parser = RuleBasedParser()
            description = {"kind": "rules", "version": BASELINE_VERSION, "sha256": parser.sha256}
            runs.append(EvaluationRun(config.name, description, run_parser(parser, examples, config.name, console)))
            continue
        k, config_settings = key(config), settings[config.name]
        if k in loaded:
            first_name, base = loaded[k]
            console.print(f"[bold]{config.name}[/bold] judges the generations of {first_name} (same model, "
                          "adapter and prompt)", highlight=False)
        else:
            console.print(f"loading model for [bold]{config.name}[/bold]", highlight=False)
            first_name, base = config.name, load_parser(config_settings)
            loaded[k] = (first_name, base)
        parser = base.sharing_generations(config_settings)
        description = {
            "kind": "llm", "model": parser.model.path.name, "model_sha256": parser.model.sha256,
            "adapter": parser.adapter_id, "prompt_version": parser.prompt_version,
            "confidence_threshold": config_settings.confidence_threshold,
            "rules_cross_check": config_settings.rules_cross_check,
            "cross_check_trust": config_settings.cross_check_trust,
            "cross_check_scope": config_settings.cross_check_scope,
            "second_opinion": parser.second.adapter_id if parser.second else None,
            "n_threads": config_settings.n_threads,
            "generations_from": first_name,
            "overrides": {name: str(v) for name, v in config.overrides.items()},
        }
        try:
            predictions = run_parser(parser, examples, config.name, console)
        finally:
            if last_use[k] == i:
                close_parser(loaded.pop(k)[1])
        runs.append(EvaluationRun(config.name, description, predictions))
    return runs


def _write_outputs(runs, gold_path: Path, out_dir: Path, console) -> None:
    from streamer.evaluation import report

    markdown = report.markdown_report(runs, gold_path.name)
    files = {"eval.json": out_dir / "eval.json", "eval.md": out_dir / "eval.md", "eval.png": out_dir / "eval.png",
             "predictions": out_dir / "predictions.jsonl"}
    report.write_json(files["eval.json"], report.report_payload(runs, gold_path, sys.argv))
    files["eval.md"].write_text(markdown)
    report.write_predictions(files["predictions"], runs)
    n = runs[0].metrics["n"]
    report.write_chart(files["eval.png"], runs, f"{gold_path.name}: {n} messages, {', '.join(r.name for r in runs)}")
    click.echo(markdown)
    errors = sum(p.error is not None for run in runs for p in run.predictions)
    if errors:
        console.print(f"[yellow]{errors} message(s) could not be parsed; scored as invalid output[/yellow]")
    console.print(f"wrote {', '.join(str(p) for p in files.values())}", highlight=False)
