"""`streamer learn`: the continuous-learning loop's verbs, on a model registry (`streamer/learning/`).

Each verb is one step of the loop; the registry is the shared record of what
was trained, what passed the gate, and which version workers run.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click

from streamer.cli.options import broker_option, settings_from, stderr_console


def registry_option(fn):
    return click.option("--registry", "registry_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="The model registry directory (env STREAMER_REGISTRY_DIR).")(fn)


def open_registry(registry_dir: Path | None):
    """The registry the flag or the setting names; a one-line error when neither does."""
    from streamer.learning.registry import Registry

    registry_dir = registry_dir or settings_from().registry_dir
    if registry_dir is None:
        raise click.ClickException("no model registry: give --registry DIR or set STREAMER_REGISTRY_DIR")
    return Registry(registry_dir)


@contextmanager
def registry_errors():
    """Registry errors as one-line click errors."""
    from streamer.learning.registry import RegistryError

    try:
        yield
    except RegistryError as err:
        raise click.ClickException(str(err)) from None


def current_version(registry):
    """The registry's current version and its verified adapter file; a one-line error when there is none."""
    with registry_errors():
        current = registry.current()
        if current is None:
            raise click.ClickException(f"{registry.path} has no current version: run `streamer learn init` first")
        return current, registry.verify(current.version)


@click.group()
def learn() -> None:
    """The continuous-learning loop: collect corrections, train, gate, promote, roll back."""


@learn.command()
@registry_option
@click.option("--adapter", "adapter_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The first version's adapter (default: the shipped one).")
@click.option("--by", default=None, help="Who creates it (default: the user name).")
def init(registry_dir: Path | None, adapter_file: Path | None, by: str | None) -> None:
    """Create a registry whose first version, v0, is the shipped adapter, promoted: workers have a model."""
    from streamer.learning.registry import Registry

    registry = open_registry(registry_dir)
    with registry_errors():
        Registry.init(registry.path, adapter_file, by)
        current = registry.current()
    click.echo(f"learn: registry {registry.path} created; current version {current.version} "
               f"(adapter sha256 {current.adapter_sha256[:12]})", err=True)


@learn.command("list")
@registry_option
def list_versions(registry_dir: Path | None) -> None:
    """Every version: its status, which is current, where it came from, who promoted it, its gate numbers."""
    from rich.console import Console
    from rich.table import Table

    registry = open_registry(registry_dir)
    with registry_errors():
        state = registry.state()
    table = Table(title=f"model registry {registry.path}")
    for column in ("version", "status", "current", "parent", "created", "promoted", "sha256", "eval"):
        table.add_column(column, no_wrap=column in ("version", "status", "sha256"))
    for entry in state.versions:
        promoted = (f"{entry.promoted_by} {entry.promoted_at:%Y-%m-%d %H:%M}" if entry.promoted_at
                    else entry.promoted_by or "")
        table.add_row(entry.version, entry.status, "*" if entry.version == state.current else "", entry.parent or "",
                      f"{entry.created_at:%Y-%m-%d %H:%M}", promoted, entry.adapter_sha256[:12],
                      _eval_numbers(entry.eval))
    Console().print(table)


@learn.command()
@click.argument("version")
@registry_option
@click.option("--by", required=True, help="Who rolls back (recorded in the registry's events).")
def rollback(version: str, registry_dir: Path | None, by: str) -> None:
    """Make VERSION, promoted before, the current one again; running workers swap to it."""
    registry = open_registry(registry_dir)
    with registry_errors():
        previous = registry.current()
        registry.rollback(version, by)
    click.echo(f"learn: {registry.path}: current version {previous.version if previous else '-'} -> {version}",
               err=True)


def _eval_numbers(eval: dict, limit: int = 4) -> str:
    """The gate's top-level numbers, short: 'f1=0.912 floor=0.85'."""
    numbers = [(key, value) for key, value in eval.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)]
    return " ".join(f"{key}={value:.4g}" for key, value in numbers[:limit])


# --- the loop's steps: collect, (feed), train, gate -----------------------------------------------------------


@learn.command()
@broker_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of this corrections dataset version (created; an earlier collection there is replaced).")
@click.option("--previous", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="An earlier collection to merge in, so the dataset grows version by version.")
@click.option("--corrections-topic", default=None, help="Default trades.corrections.")
@click.option("--frozen", "frozen_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Frozen test sets no correction may overlap (default: blind_v1 and gold_test); repeatable.")
@click.option("--idle", "idle_s", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds of silence that end the read.")
def collect(broker_url: str | None, out_dir: Path, previous: Path | None, corrections_topic: str | None,
            frozen_files: tuple[Path, ...], idle_s: float) -> None:
    """Step 1: trades.corrections -> a versioned corrections dataset (deduplicated, checked, split, manifest)."""
    from streamer.learning.collect import FROZEN_TEST_FILES, CollectError, collect_corrections
    from streamer.streaming.kafka import BrokerUnavailable

    settings = settings_from(broker_url=broker_url, corrections_topic=corrections_topic)
    try:
        report = collect_corrections(settings, out_dir, list(frozen_files) or list(FROZEN_TEST_FILES), previous,
                                     idle_s=idle_s, progress=True)
    except (CollectError, BrokerUnavailable) as err:
        raise click.ClickException(str(err)) from None
    click.echo(report.render(), err=True)


@learn.command()
@click.argument("annotated", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@broker_option
@click.option("--reviewer", required=True, help="Whose labels these are (recorded in every correction).")
@click.option("--corrections-topic", default=None, help="Default trades.corrections.")
@click.option("--with-model-output/--no-model-output", default=True, show_default=True,
              help="Parse each line with the current model first, so the record holds what the model said.")
@registry_option
def feed(annotated: Path, broker_url: str | None, reviewer: str, corrections_topic: str | None,
         with_model_output: bool, registry_dir: Path | None) -> None:
    """Publish annotated JSONL lines to trades.corrections as one reviewer's decisions (backfills, demos)."""
    from streamer.learning.feed import FeedError, corrections_from_file, publish_corrections
    from streamer.streaming.kafka import BrokerUnavailable

    settings = settings_from(broker_url=broker_url, corrections_topic=corrections_topic)
    parser = None
    if with_model_output:
        from streamer.cli.options import load_parser

        adapter = None
        if registry_dir or settings.registry_dir:
            registry = open_registry(registry_dir)
            with registry_errors():
                current = registry.current()
                adapter = str(registry.adapter_path(current.version)) if current else None
        parser = load_parser(settings.model_copy(update={"adapter_path": adapter}) if adapter else settings)
    try:
        corrections = corrections_from_file(annotated, reviewer, parser)
        published = publish_corrections(settings, corrections)
    except (FeedError, BrokerUnavailable) as err:
        raise click.ClickException(str(err)) from None
    wrong = sum(1 for c in corrections if c.model_output is not None
                and c.model_output.model_dump(include=set(c.corrected.model_fields)) != c.corrected.model_dump())
    click.echo(f"learn: published {published} corrections from {annotated} to {settings.corrections_topic}"
               + (f"; the model had {wrong} of them wrong" if parser is not None else ""), err=True)


@learn.command()
@registry_option
@click.option("--corrections", "corrections_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="A collected dataset (learn collect).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where the candidate adapter, its card, the training mix and the loss curve go.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True, help="Each correction this often.")
@click.option("--replay-share", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True,
              help="Share of the mix drawn from earlier training data (against forgetting).")
@click.option("--replay", "replay_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Earlier training files to sample (default: the production adapter's own, from its card, repeats kept; "
                   "else the hand-written and gold training splits).")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-4, show_default=True)
@click.option("--case-variants", "case_fraction", type=click.FloatRange(0, 1), default=0.3, show_default=True)
@click.option("--time-limit", "time_limit_min", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Minutes; the best adapter so far is kept.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--torch-threads", type=click.IntRange(min=1), default=None,
              help="PyTorch CPU threads (default: all cores but one; on an idle machine all cores are faster).")
@click.pass_context
def train(ctx: click.Context, registry_dir: Path | None, corrections_dir: Path, out_dir: Path, repeat: int,
          replay_share: float, replay_files: tuple[Path, ...], steps: int, lr: float, case_fraction: float,
          time_limit_min: float | None, device: str, seed: int, torch_threads: int | None) -> None:
    """Step 2: continue the current version's adapter on the corrections, mixed with replayed earlier data."""
    import json

    from streamer.cli.finetune import finetune
    from streamer.data.manage import read_jsonl, write_jsonl
    from streamer.learning.gate import card_perplexity
    from streamer.learning.mix import REPLAY_FILES, replay_files_of, selection_split, write_training_mix

    registry = open_registry(registry_dir)
    current, adapter = current_version(registry)
    train_file = corrections_dir / "train.jsonl"
    heldout_file = corrections_dir / "heldout.jsonl"
    if not train_file.is_file():
        raise click.ClickException(f"{corrections_dir} is not a collected dataset (no train.jsonl): run `learn collect`")
    out_dir.mkdir(parents=True, exist_ok=True)
    heldout = read_jsonl(heldout_file) if heldout_file.is_file() else []
    corrections, selection = selection_split(read_jsonl(train_file), _heldout_fraction(corrections_dir))
    mix_path = out_dir / "train_mix.jsonl"
    replay = list(replay_files) or replay_files_of(adapter) or list(REPLAY_FILES)
    manifest = write_training_mix(corrections, replay, mix_path, repeat, replay_share, seed,
                                  exclude=[*heldout, *selection])
    manifest["corrections_file"] = {"path": str(train_file), "selection": len(selection)}
    (out_dir / "train_mix.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # the loss that picks the best step: a slice of the training corrections (never the held-out part the gate
    # scores) when there are enough, else gold_dev
    dev = Path("datasets/splits/gold_dev.jsonl")
    if len(selection) >= 4:
        dev = out_dir / "selection.jsonl"
        write_jsonl(dev, selection)
    click.echo(f"learn: training on {manifest['mix']['lines']} records ({manifest['corrections']} corrections "
               f"x{repeat} + {manifest['replay_records']} replayed), from {current.version}; best step by the loss on "
               f"{dev}", err=True)
    ctx.invoke(finetune, train_paths=(mix_path,), dev_path=dev, out_dir=out_dir, init_adapter=adapter, steps=steps,
               lr=lr, eval_every=max(1, min(50, steps // 4)), dev_limit=64, seed=seed, case_fraction=case_fraction,
               time_limit_min=time_limit_min, device=device, torch_threads=torch_threads, parity_messages=2)
    before, after = card_perplexity(adapter), card_perplexity(out_dir / "adapter.gguf")
    if before and after:
        click.echo(f"learn: forgetting, English perplexity {current.version} {before:.1f} -> candidate {after:.1f} "
                   f"({100 * (after / before - 1):+.1f}%); accuracy on the old sets: `streamer learn gate`", err=True)


def _heldout_fraction(corrections_dir: Path) -> float:
    """The held-out fraction `learn collect` split this dataset with (its manifest), else the default."""
    import json

    from streamer.learning.collect import HELDOUT_FRACTION

    try:
        return float(json.loads((corrections_dir / "manifest.json").read_text())["heldout_fraction"])
    except (OSError, KeyError, TypeError, ValueError):
        return HELDOUT_FRACTION


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


@learn.command()
@registry_option
@click.option("--candidate", "candidate_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="A `learn train` output folder.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where the chosen blend goes, as a candidate folder `learn gate` takes.")
@click.option("--weights", default=",".join(f"{w:g}" for w in (0.25, 0.5, 0.75, 1.0)), show_default=True,
              help="Blend weights to try (share of the candidate; 1 is the candidate as it is).")
@click.option("--dev", "dev_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Development sets the weight is chosen on (default hand_dev and gold_dev); never a blind set.")
@click.option("--n-threads", type=int, default=None, help="CPU threads for llama.cpp.")
def blend(registry_dir: Path | None, candidate_dir: Path, out_dir: Path, weights: str, dev_files: tuple[Path, ...],
          n_threads: int | None) -> None:
    """Step 2b: blend the candidate's weights with production's (WiSE-FT), the weight chosen on dev data only."""
    import json
    import shutil

    from streamer.finetune.export import write_adapter_gguf
    from streamer.learning import blend as blending
    from streamer.learning import gate as gating
    from streamer.parsing.merged import MergeError, read_adapter_gguf
    from streamer.parsing.model import resolve_model_path

    try:
        tried = sorted({float(w) for w in weights.split(",") if w.strip()})
    except ValueError:
        tried = []
    if not tried or not all(0 < w <= 1 for w in tried):
        raise click.ClickException(f"--weights {weights!r}: give numbers in (0, 1] separated by commas")
    registry = open_registry(registry_dir)
    production, production_adapter = current_version(registry)
    candidate_adapter = candidate_dir / "adapter.gguf"
    try:
        candidate, original = read_adapter_gguf(candidate_adapter), read_adapter_gguf(production_adapter)
        card = json.loads((candidate_dir / "adapter.json").read_text())
    except (MergeError, OSError, ValueError, KeyError) as err:
        raise click.ClickException(f"cannot read the adapters to blend (and the candidate's card): {err}") from None
    sets = {path.stem: path for path in (dev_files or gating.FORGETTING_SETS)}
    selection = candidate_dir / "selection.jsonl"
    selection_set = "selection" if selection.is_file() and _lines(selection) else None
    if selection_set:
        sets[selection_set] = selection
    out_dir.mkdir(parents=True, exist_ok=True)
    tries = out_dir / "tried"
    tries.mkdir(exist_ok=True)
    adapters, blends = {"production": production_adapter}, {1.0: candidate}
    for weight in tried:
        if weight == 1.0:
            adapters["w1"] = candidate_adapter
            continue
        path = tries / f"w{weight:g}.gguf"
        try:
            blends[weight] = blending.blend_adapters(candidate, original, weight)
        except MergeError as err:
            raise click.ClickException(f"cannot blend {candidate_adapter} with {production_adapter}: {err}") from None
        write_adapter_gguf(blends[weight], path, "blend")
        # the card beside it names the prompt the adapters were trained with (without it the parser falls back)
        path.with_suffix(".json").write_text(json.dumps(_blend_card(card, blends[weight], weight, production.version))
                                             + "\n")
        adapters[f"w{weight:g}"] = path
    click.echo(f"learn: {len(tried)} blend weights of {candidate_dir} and {production.version} on "
               f"{', '.join(f'{name} ({_lines(path)})' for name, path in sets.items())}", err=True)
    settings = settings_from(n_threads=n_threads)
    scores = gating.evaluate(settings, adapters, sets, console=stderr_console())
    by_model = {model: {name: scores[name][model] for name in sets} for model in adapters}
    scored = [blending.WeightScore(w, by_model[f"w{w:g}"]) for w in tried]
    chosen, passing = blending.choose_weight(scored, by_model["production"], selection_set)
    report = {"candidate": str(candidate_dir), "production_version": production.version,
              "set_files": {name: str(path) for name, path in sets.items()}, "selection_set": selection_set,
              "production": by_model["production"], "weights": {f"{s.weight:g}": s.sets for s in scored},
              "passing": passing, "chosen": chosen.weight if chosen else None}
    (out_dir / "blend.json").write_text(json.dumps(report, indent=2) + "\n")
    blending.plot_weights(scored, by_model["production"], chosen.weight if chosen else None, out_dir / "blend.png")
    click.echo(blending.render_blend_table(report))
    if chosen is None:
        raise click.ClickException(f"no blend weight keeps the dev sets within the gate's rule; report in "
                                   f"{out_dir / 'blend.json'}")
    shutil.copyfile(adapters[f"w{chosen.weight:g}"], out_dir / "adapter.gguf")
    if chosen.weight != 1.0:  # weight 1 is the candidate: its card already holds its perplexity
        weights_out = blends[chosen.weight]
        card = _blend_card(card, weights_out, chosen.weight, production.version)
        card["blend"].update({"candidate": str(candidate_adapter), "chosen_on": list(sets),
                              "report": str(out_dir / "blend.json")})
        with stderr_console().status("perplexity on plain English, base vs blend"):
            card["perplexity_english"] = blending.english_perplexity(weights_out, resolve_model_path(settings))
    (out_dir / "adapter.json").write_text(json.dumps(card, indent=2) + "\n")
    for name in ("train_mix.manifest.json", "selection.jsonl"):
        if (candidate_dir / name).is_file():
            shutil.copyfile(candidate_dir / name, out_dir / name)
    click.echo(f"learn: chose weight {chosen.weight:g} (passing the dev rule: {', '.join(f'{w:g}' for w in passing)}); "
               f"wrote {out_dir / 'adapter.gguf'}, blend.json, blend.png; next: learn gate --candidate {out_dir}",
               err=True)


def _blend_card(card: dict, weights, weight: float, production_version: str) -> dict:
    """The candidate's card for a blend of it: same prompt and base, the blend's rank, alpha and weight."""
    lora = {**card.get("lora", {}), "rank": weights.rank, "alpha": weights.alpha}
    return {**card, "lora": lora, "blend": {"weight": weight, "production": production_version}}


@learn.command()
@registry_option
@click.option("--candidate", "candidate_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="A `learn train` output folder.")
@click.option("--corrections", "corrections_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The collected dataset it was trained on (its heldout.jsonl is one gate set).")
@click.option("--version", "version_name", default=None, help="The candidate's registry name (default: the next vN).")
@click.option("--by", required=True, help="Who runs the gate (recorded as promoted_by).")
@click.option("--blind", "blind_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Frozen blind test sets (default datasets/blind_v1.jsonl); repeatable.")
@click.option("--forgetting", "forgetting_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Old sets that must not drop (default hand_dev and gold_dev); repeatable.")
@click.option("--margin", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="Exact match may drop by this share of a set (noise), at least one message.")
@click.option("--max-perplexity-drift", type=click.FloatRange(min=0), default=0.05, show_default=True)
@click.option("--n-threads", type=int, default=None, help="CPU threads for llama.cpp.")
@click.option("--dry-run", is_flag=True, help="Evaluate and report; leave the registry as it is.")
def gate(registry_dir: Path | None, candidate_dir: Path, corrections_dir: Path, version_name: str | None, by: str,
         blind_files: tuple[Path, ...], forgetting_files: tuple[Path, ...], margin: float,
         max_perplexity_drift: float, n_threads: int | None, dry_run: bool) -> None:
    """Step 3: candidate vs production on the blind set, held-out corrections and old sets; promote or reject."""
    import json

    from streamer.learning import gate as gating

    registry = open_registry(registry_dir)
    production, production_adapter = current_version(registry)
    with registry_errors():
        taken = {entry.version for entry in registry.state().versions}
    candidate_adapter = candidate_dir / "adapter.gguf"
    if not candidate_adapter.is_file():
        raise click.ClickException(f"{candidate_dir} holds no adapter.gguf: run `streamer learn train` first")
    version = version_name or next(f"v{i}" for i in range(1, 10_000) if f"v{i}" not in taken)
    sets = {path.stem: path for path in (blind_files or gating.BLIND_SETS)}
    blind = set(sets)  # a set named both blind and forgetting keeps the blind sets' strict rule
    heldout = corrections_dir / "heldout.jsonl"
    if heldout.is_file() and _lines(heldout):
        sets["corrections_heldout"] = heldout
    sets.update({path.stem: path for path in (forgetting_files or gating.FORGETTING_SETS)})
    settings = settings_from(n_threads=n_threads)
    scores = gating.evaluate(settings, {"production": production_adapter, "candidate": candidate_adapter}, sets,
                             console=stderr_console())
    perplexity = {"production": gating.card_perplexity(production_adapter),
                  "candidate": gating.card_perplexity(candidate_adapter)}
    rule = gating.GateRule(margin=margin, max_perplexity_drift=max_perplexity_drift)
    forgetting = [path.stem for path in (forgetting_files or gating.FORGETTING_SETS) if path.stem not in blind]
    decision = gating.decide(scores, perplexity, rule, forgetting=forgetting)
    report_dir = candidate_dir / "gate"
    meta = {"candidate_version": version, "production_version": production.version, "rule": rule.__dict__,
            "set_files": {name: str(path) for name, path in sets.items()}, "forgetting_sets": forgetting,
            "perplexity": perplexity, "by": by}
    reports = gating.write_report(report_dir, decision, meta)
    click.echo(gating.render_table(decision))
    if dry_run:
        click.echo(f"learn: dry run; report in {report_dir}", err=True)
        return
    from streamer.parsing.model import sha256_file

    manifests = {str(path): sha256_file(path) for path in (corrections_dir / "manifest.json",
                                                           candidate_dir / "train_mix.manifest.json") if path.is_file()}
    numbers = {f"{name}_exact": by_model["candidate"]["exact"] for name, by_model in scores.items()}
    numbers.update({f"{name}_silent": by_model["candidate"]["silent"] for name, by_model in scores.items()})
    with registry_errors():
        registry.add(version, candidate_adapter, parent=production.version, data_manifests=manifests,
                     eval={"promote": decision.promote, **numbers}, report_files=reports, by=by)
        if decision.promote:
            registry.promote(version, by)
        else:
            registry.reject(version, by)
    verdict = "promoted: workers watching the registry swap to it" if decision.promote else "rejected (kept with its report)"
    click.echo(f"learn: {version} {verdict}; report {registry.path / version / 'gate.md'}", err=True)
    (report_dir / "decision.json").write_text(json.dumps({"version": version, "promoted": decision.promote}) + "\n")


@learn.command()
@click.argument("gate_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--update-docs", "document", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Rewrite the <!-- eval:BLOCK:start/end --> block of this document from GATE_JSON (or a blend.json).")
@click.option("--block", default="learning", show_default=True, help="The block's name in the document.")
def report(gate_json: Path, document: Path | None, block: str) -> None:
    """Print a gate's before/after table, or a blend's per-weight table (or write it into a document's block)."""
    import json

    from streamer.evaluation.report import DocsError, replace_block
    from streamer.learning.blend import render_blend_table
    from streamer.learning.gate import render_docs_block

    payload = json.loads(gate_json.read_text())
    table = render_blend_table(payload) if "weights" in payload else render_docs_block(payload)
    if document is None:
        click.echo(table)
        return
    try:
        document.write_text(replace_block(document.read_text(), block, table, str(document)))
    except DocsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"learn: wrote the {block} block of {document} from {gate_json}", err=True)

