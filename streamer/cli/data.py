"""`streamer data ...`: make synthetic data, split it, check it for leaks, record what it is.

Bad input (a missing file, a line that is not JSON) is a one-line error naming
the file and line, exit status 2; `check` exits 1 when test messages occur
verbatim in training data.
"""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from streamer.data.manage import (
    SPLITS, DatasetError, contamination, normalise_text, read_texts, split_records, write_jsonl,
)
from streamer.data.manage import manifest as build_manifest


class DataInputError(click.ClickException):
    """Bad input (a file, a line, a flag): printed as one line, exit status 2 like click's usage errors."""

    exit_code = 2


def _located(paths: tuple[str, ...]) -> list[dict]:
    try:
        return [{"where": where, "text": record["text"]} for path in paths for where, record in read_texts(path)]
    except DatasetError as err:
        raise DataInputError(str(err)) from None


@click.group("data")
def data() -> None:
    """Synthetic training data and dataset management."""


@data.command()
@click.option("--n", "count", type=click.IntRange(min=1), required=True, help="Number of records.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed; the same seed gives the same file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="JSONL file to write.")
@click.option("--exclude", "exclude_files", multiple=True, type=click.Path(),
              help="JSONL whose texts must not be generated (held-out splits); repeatable. "
                   "A matching record is drawn again.")
def synth(count: int, seed: int, out: Path, exclude_files: tuple[str, ...]) -> None:
    """Write COUNT synthetic labelled chat messages as JSONL."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streamer.data.synth import iter_synthesize

    if out.is_dir():
        raise DataInputError(f"{out}: is a directory, cannot write JSONL there")
    try:
        held_out = {normalise_text(record["text"]) for path in exclude_files for _, record in read_texts(path)}
    except DatasetError as err:
        raise DataInputError(str(err)) from None
    console = Console(stderr=True)
    columns = (TextColumn("synth seed {task.fields[seed]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("synth", total=count, seed=seed)

        def advancing():
            for record in iter_synthesize(count, seed, lambda text: normalise_text(text) in held_out):
                yield record
                progress.advance(task)

        try:
            written = write_jsonl(out, advancing())
        except DatasetError as err:
            raise DataInputError(str(err)) from None
    console.print(f"wrote {written} records to {out}")


@data.command()
@click.argument("file", type=click.Path())
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory for <stem>_train/_dev/_test.jsonl.")
@click.option("--dev", type=click.FloatRange(0, 1), default=0.2, show_default=True, help="Fraction for dev.")
@click.option("--test", type=click.FloatRange(0, 1), default=0.4, show_default=True, help="Fraction for test.")
def split(file: str, out_dir: Path, dev: float, test: float) -> None:
    """Split FILE into train/dev/test by a hash of each message's normalised text."""
    if dev + test > 1:
        raise DataInputError(f"--dev + --test must be at most 1, got {dev + test:g}")
    try:
        records = [record for _, record in read_texts(file)]
        splits = split_records(records, dev=dev, test=test)
        stem = Path(file).stem
        fractions = {"train": 1 - dev - test, "dev": dev, "test": test}
        for name in SPLITS:
            if fractions[name] == 0:  # e.g. --test 0 for training-only data: no empty file
                continue
            path = out_dir / f"{stem}_{name}.jsonl"
            write_jsonl(path, splits[name])
            click.echo(f"{name}: {len(splits[name])} -> {path}")
    except DatasetError as err:
        raise DataInputError(str(err)) from None


@data.command()
@click.option("--train", "train_files", multiple=True, required=True, type=click.Path(),
              help="Training JSONL (repeatable).")
@click.option("--test", "test_files", multiple=True, required=True, type=click.Path(),
              help="Test JSONL (repeatable).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.8, show_default=True,
              help="Word 3-gram Jaccard from which a pair is a near duplicate.")
@click.option("--examples", type=click.IntRange(min=0), default=5, show_default=True, help="Examples shown per kind.")
def check(train_files: tuple[str, ...], test_files: tuple[str, ...], threshold: float, examples: int) -> None:
    """Report test messages that also occur in training data; exit 1 on exact copies."""
    report = contamination(_located(train_files), _located(test_files), threshold=threshold)
    click.echo(report.render(examples=examples))
    if not report.clean:
        raise click.ClickException(
            f"contamination: {len(report.exact)} test records occur verbatim in training data")


@data.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(path_type=Path), default=Path("datasets/manifest.json"),
              show_default=True, help="Manifest JSON to write.")
def manifest(files: tuple[str, ...], out: Path) -> None:
    """Write a manifest of FILES: lines, sha256, counts per intent and asset class."""
    try:
        content = build_manifest(files)
    except DatasetError as err:
        raise DataInputError(str(err)) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    except OSError as err:
        raise DataInputError(f"{out}: cannot write ({err.strerror})") from None
    click.echo(f"wrote manifest of {len(files)} files to {out}")
