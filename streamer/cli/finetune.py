"""`streamer finetune`: train a LoRA adapter, export it for llama.cpp, check it, describe it."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import click
import orjson

ADAPTER_ID_DEFAULT = "smollm2-135m-trades"


@click.command()
@click.option("--train", "train_paths", required=True, multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Annotated records (JSONL: text, expected, optional spans/timestamp); repeat to combine files.")
@click.option("--dev", "dev_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Annotated dev records: loss is measured on them and the best adapter kept.")
@click.option("--base", "base_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Base GGUF model (default: the bundled SmolLM2-135M).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for adapter.gguf, adapter.json, loss_curve.png.")
@click.option("--init-adapter", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from this GGUF LoRA adapter (same base and rank) instead of fresh weights; its alpha is kept.")
@click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--rank", type=click.IntRange(min=1), default=16, show_default=True, help="LoRA rank.")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=None, help="LoRA alpha (default: 2 x rank).")
@click.option("--eval-every", type=click.IntRange(min=1), default=25, show_default=True, help="Steps between dev evaluations.")
@click.option("--dev-limit", type=click.IntRange(min=0), default=64, show_default=True,
              help="Dev records used for the loss (0 = all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--case-variants", "case_fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              metavar="FRACTION",
              help="Also train on an UPPER or Title Case copy of this fraction of the training records, picked by "
                   "--seed (0 = off); a copy whose casing changes nothing or whose target cannot be built is skipped.")
@click.option("--time-limit", "time_limit_min", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop training after this many minutes (the best adapter so far is kept).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Training precision; auto = bf16 autocast where the hardware has bf16 matmuls.")
@click.option("--torch-threads", type=click.IntRange(min=1), default=None,
              help="PyTorch CPU threads (default: all cores but one).")
@click.option("--adapter-id", default=ADAPTER_ID_DEFAULT, show_default=True, help="Id written to the adapter card.")
@click.option("--parity-messages", type=click.IntRange(min=0), default=4, show_default=True,
              help="Dev messages for the PyTorch vs llama.cpp parity check (0 = skip).")
@click.option("--merge-to", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write one GGUF with the adapter merged in and quantized.")
@click.option("--merge-quant", type=click.Choice(["q4_0", "q4_1", "q5_0", "q8_0", "iq4_nl", "f16", "q4_k_m", "q5_k_m"]), default="q4_0",
              show_default=True, help="Quantization of the merged GGUF.")
@click.option("--n-threads", type=int, default=None, help="CPU threads for llama.cpp in the parity check.")
def finetune(train_paths: tuple[Path, ...], dev_path: Path, base_path: Path | None, out_dir: Path, init_adapter: Path | None,
             steps: int, batch_size: int,
             lr: float, rank: int, alpha: float | None, eval_every: int, dev_limit: int, seed: int, case_fraction: float,
             time_limit_min: float | None, device: str, precision: str, torch_threads: int | None, adapter_id: str, parity_messages: int,
             merge_to: Path | None, merge_quant: str, n_threads: int | None) -> None:
    """Train a LoRA adapter on annotated records and export it as a llama.cpp GGUF adapter in OUT."""
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as err:
        raise click.ClickException(f"fine-tuning needs the [finetune] extra ({err.name} is missing): "
                                   "pip install -e '.[finetune]'") from None
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    )

    from streamer.cli.options import stderr_console
    from streamer.finetune import export as ex
    from streamer.finetune import train as tr
    from streamer.parsing.model import ModelLoadError, bundled_model_path, check_gguf, sha256_file

    console = stderr_console()
    try:
        base = base_path or bundled_model_path()
        check_gguf(base, "base model")
        train_records = [r for path in train_paths for r in tr.read_records(path)]
        dev_records = tr.read_records(dev_path)
    except (ModelLoadError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        raise click.ClickException(f"cannot read {err.filename}: {err.strerror}") from None
    if not train_records:
        raise click.ClickException(f"{', '.join(map(str, train_paths))} hold no records")
    initial = None
    if init_adapter is not None:
        try:
            initial = ex.read_adapter_gguf(init_adapter)
        except (ex.MergeError, ValueError, KeyError) as err:
            raise click.ClickException(f"{init_adapter}: not a readable GGUF LoRA adapter ({err})") from None
        if initial.rank != rank:
            raise click.ClickException(f"{init_adapter} has rank {initial.rank}: pass --rank {initial.rank}")
        if alpha is not None and alpha != initial.alpha:
            raise click.ClickException(f"{init_adapter} was trained with alpha {initial.alpha:g}: leave --alpha out")
        alpha = initial.alpha
    out_dir.mkdir(parents=True, exist_ok=True)

    config = tr.TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, rank=rank, alpha=alpha or 2.0 * rank, eval_every=eval_every,
        seed=seed, dev_limit=dev_limit, warmup_steps=min(10, max(1, steps // 10)), device=device, precision=precision,
        torch_threads=torch_threads,
        time_limit_s=time_limit_min * 60 if time_limit_min else None, start_is_candidate=init_adapter is None,
    )
    tokens = tr.ParserTokens(base)
    train_examples, train_skipped = tr.encode_records(train_records, tokens, config.max_seq_tokens)
    dev_examples, dev_skipped = tr.encode_records(dev_records, tokens, config.max_seq_tokens)
    variant_pairs, variant_skipped = tr.case_variants(train_records, case_fraction, seed)
    variant_examples, too_long = tr.encode_pairs(variant_pairs, tokens, config.max_seq_tokens)
    variant_skipped += too_long
    for name, skipped, total in (("train", train_skipped, len(train_records)), ("dev", dev_skipped, len(dev_records))):
        if skipped:
            reasons = ", ".join(f"{k} {v}" for k, v in skipped.most_common())
            console.print(f"[yellow]{name}: {sum(skipped.values())} of {total} records have no usable target[/yellow] ({reasons})",
                          highlight=False)
    if case_fraction:
        reasons = ", ".join(f"{k} {v}" for k, v in variant_skipped.most_common()) or "none"
        console.print(f"case variants of {case_fraction:g} of {len(train_records)} train records: added "
                      f"{len(variant_examples)}, skipped {variant_skipped.total()} ({reasons})", highlight=False)
    if not train_examples:
        raise click.ClickException("no training record has a usable target (see the counts above)")
    train_examples += variant_examples

    started = time.perf_counter()
    threads = tr.set_torch_threads(torch_threads)
    try:
        resolved_device = tr.pick_device(device)
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    with console.status(f"loading {base.name} into PyTorch ({resolved_device})"):
        model = tr.add_lora(tr.load_base_model(base, resolved_device), config)
        if initial is not None:
            try:
                ex.load_lora_weights(model, initial)
            except ex.MergeError as err:
                raise click.ClickException(f"{init_adapter}: {err}") from None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                  TextColumn("{task.fields[dev]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
        result = tr.train_lora(model, train_examples, dev_examples, config, resolved_device, progress)
    result.skipped = {"train": dict(train_skipped), "dev": dict(dev_skipped)}

    adapter_path = out_dir / "adapter.gguf"
    with console.status("exporting the GGUF adapter"):
        weights = ex.lora_weights(model)
        ex.write_adapter_gguf(weights, adapter_path, base.name)
        tr.plot_loss_curve(result, out_dir / "loss_curve.png")
    with console.status("perplexity on plain English, base vs tuned"):
        forgetting = tr.forgetting_check(model, tokens, resolved_device)

    card = {
        "id": adapter_id,
        "prompt_version": tr.PROMPT_VERSION,
        "base_model": base.name,
        "base_model_sha256": sha256_file(base),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lora": {"rank": config.rank, "alpha": config.alpha, "dropout": config.dropout, "target_modules": "all-linear",
                 "tensor_type": "f16"},
        "training": {
            "init_adapter": {"path": str(init_adapter), "sha256": sha256_file(init_adapter)} if init_adapter else None,
            "train_files": [str(p) for p in train_paths], "dev_file": str(dev_path), "train_examples": result.train_examples,
            "dev_examples_for_loss": result.dev_examples, "skipped": result.skipped,
            "case_variants": {"fraction": case_fraction, "added": len(variant_examples),
                              "skipped": dict(variant_skipped.most_common())},
            "steps": result.steps_done,
            "best_step": result.best_step, "best_dev_loss": round(result.best_dev_loss, 5),
            "batch_size": config.batch_size, "lr": config.lr, "seed": config.seed, "device": result.device,
            "precision": result.precision, "torch_threads": threads,
            "train_seconds": round(result.train_seconds, 1), "seconds_per_step": round(result.seconds_per_step, 2),
        },
        "perplexity_english": forgetting,
    }
    _write_card(out_dir, card)

    parity = None
    if parity_messages:
        texts = [r["text"] for r in dev_records[:parity_messages]]
        with console.status(f"parity: PyTorch vs llama.cpp on {len(texts)} dev messages"):
            parity = ex.check_parity(model, tokens, base, adapter_path, texts, n_threads=n_threads)
        card["parity"] = parity.as_dict()
        _write_card(out_dir, card)

    if merge_to is not None:
        with console.status(f"merging into {merge_to} ({merge_quant})"):
            try:
                ex.merge_and_quantize(base, weights, merge_to, merge_quant, n_threads=n_threads or 2)
            except ex.MergeError as err:
                raise click.ClickException(str(err)) from None

    elapsed = time.perf_counter() - started
    click.echo(
        f"trained {result.steps_done} steps in {result.train_seconds / 60:.1f} min ({result.seconds_per_step:.2f} s/step, "
        f"{result.device}, {result.precision}, {threads} threads); best dev loss {result.best_dev_loss:.4f} at step {result.best_step}\n"
        f"wrote {adapter_path} ({adapter_path.stat().st_size / 1e6:.1f} MB), {out_dir / 'adapter.json'}, "
        f"{out_dir / 'loss_curve.png'}" + (f", {merge_to}" if merge_to else "") + "\n"
        f"English perplexity: base {forgetting['base']}, tuned {forgetting['tuned']}\n"
        f"total {elapsed / 60:.1f} min",
        err=True,
    )
    if parity is not None:
        click.echo(f"parity: {parity.as_dict()}", err=True)
        for m in parity.messages:
            if not m["same"]:
                margins = ", ".join(f"{x:.3f}" for x in m.get("flip_margins", [])) or "none"
                click.echo(f"  differs on {m['text']!r} (PyTorch margin at the flipped tokens: {margins}):\n"
                           f"    torch  {m['torch']}\n    parser {m['parser']}", err=True)
        if not parity.ok:
            raise click.ClickException(f"parity check failed: llama.cpp and PyTorch disagree (files kept in {out_dir})")


def _write_card(out_dir: Path, card: dict) -> None:
    (out_dir / "adapter.json").write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2) + b"\n")
