"""Evaluation outputs: a markdown table (stdout), a JSON file with every number, a PNG chart, predictions JSONL;
and the numbers in the docs, rendered from a committed copy of such a JSON file.

Every output takes a list of runs, one per configuration: a single run is the
one-column case of the compare mode, so both read the same way.

Docs blocks: a document carries a result between two markers,
`<!-- eval:NAME:start -->` and `<!-- eval:NAME:end -->`. `streamer eval --update-docs`
copies the run's `eval.json` (and chart) to `docs/results/eval/NAME.json` (NAME is
the gold file's stem) and rewrites the block from it; `render_documents` renders
every block from the committed files alone, so a test can fail when a document
and its results file drift apart.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shlex
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import orjson

from schemas import CONTRACT_FIELDS
from streamer.evaluation.harness import EvaluationRun
from streamer.evaluation.metrics import SILENT_TARGET

METRIC_DEFINITIONS = "streamer/evaluation/metrics.py (module docstring) and docs/evaluation.md"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(digits: int) -> Callable[[float | None], str]:
    return lambda value: "–" if value is None else f"{value:.{digits}f}"


def _at_target(row: dict | None) -> str:
    """'45.6% at threshold 0.9901': the review the silent-error target costs (metrics.review_for_silent_target)."""
    return "–" if row is None else f"{_pct(row['flag_rate'])} at threshold {row['threshold']:.4g}"


# (row label, how to read it from a run's metrics, how to print it)
SUMMARY_ROWS: list[tuple[str, Callable[[dict], float | None], Callable]] = [
    ("exact match", lambda m: m["exact_match"], _pct),
    ("valid output", lambda m: m["valid_output_rate"], _pct),
    ("micro F1 (all fields)", lambda m: m["micro"]["f1"], _num(3)),
    ("macro F1 (per-field mean)", lambda m: m["macro_f1"], _num(3)),
    ("flag rate", lambda m: m["flag_rate"], _pct),
    ("flag precision", lambda m: m["flag_precision"], _pct),
    ("flag recall", lambda m: m["flag_recall"], _pct),
    ("silent errors (published, wrong)", lambda m: m["silent_error_rate"], _pct),
    (f"flag rate for silent errors <= {SILENT_TARGET:.1%}", lambda m: m["review_for_silent_target"], _at_target),
    ("calibration ECE", lambda m: m["calibration"]["ece"], _num(3)),
    ("latency p50 (ms)", lambda m: m["latency_ms"]["p50"], _num(1)),
    ("latency p95 (ms)", lambda m: m["latency_ms"]["p95"], _num(1)),
    ("generated tokens/s", lambda m: m["generated_tokens_per_s"], _num(1)),
]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown_report(runs: Sequence[EvaluationRun], gold_label: str) -> str:
    """Summary table and per-field table; a single run also gets P/R/accuracy and its reliability table."""
    n = runs[0].metrics["n"]
    lines = [f"## Evaluation on {gold_label} ({n} messages)", ""]
    summary = [[label] + [fmt(read(run.metrics)) for run in runs] for label, read, fmt in SUMMARY_ROWS]
    summary[0][1:] = [f"{_pct(r.metrics['exact_match'])} ({r.metrics['exact_match_count']}/{n})" for r in runs]
    lines += _table(["metric"] + [run.name for run in runs], summary) + [""]

    f1 = _num(3)
    if len(runs) == 1:
        fields = runs[0].metrics["fields"]
        rows = [[name, str(s["support"]), f1(s["precision"]), f1(s["recall"]), f1(s["f1"]), _pct(s["accuracy"])]
                for name, s in fields.items()]
        lines += _table(["field", "support", "precision", "recall", "F1", "accuracy"], rows) + [""]
        bins = [b for b in runs[0].metrics["calibration"]["bins"] if b["count"]]
        rows = [[f"{b['lower']:.1f}–{b['upper']:.1f}", str(b["count"]), f1(b["mean_confidence"]), _pct(b["accuracy"])]
                for b in bins]
        lines += _table(["confidence", "messages", "mean confidence", "exact match"], rows) + [""]
        rows = [[f"{r['threshold']:.1f}", _pct(r["flag_rate"]), _pct(r["flag_precision"]), _pct(r["flag_recall"]),
                 _pct(r["silent_error_rate"])] for r in runs[0].metrics.get("threshold_sweep", [])]
        if rows:
            lines += ["What another `--threshold` would flag (same predictions):", ""]
            lines += _table(["threshold", "flag rate", "flag precision", "flag recall", "silent errors"], rows) + [""]
    else:
        support = runs[0].metrics["fields"]
        rows = [[name, str(support[name]["support"])] + [f1(run.metrics["fields"][name]["f1"]) for run in runs]
                for name in CONTRACT_FIELDS]
        lines += _table(["field F1", "support"] + [run.name for run in runs], rows) + [""]
    lines.append(f"Definitions: {METRIC_DEFINITIONS}.")
    return "\n".join(lines) + "\n"


def report_payload(runs: Sequence[EvaluationRun], gold_path: Path, command: Sequence[str]) -> dict:
    """Everything the run measured, plus what it measured it on, for the JSON file."""
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(command),
        "gold": {"path": str(gold_path), "sha256": hashlib.sha256(gold_path.read_bytes()).hexdigest(),
                 "n": runs[0].metrics["n"]},
        "definitions": METRIC_DEFINITIONS,
        "machine": machine(),
        "configs": [
            {"name": run.name, "parser": run.description,
             "errors": sum(p.error is not None for p in run.predictions), "metrics": run.metrics}
            for run in runs
        ],
    }


def machine() -> dict:
    """What the latencies were measured on: the CPU model, the CPUs this process may use, the load at the end."""
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cpus_usable": usable, "load_average_1_5_15_min": load}


def write_json(path: Path, payload: dict) -> None:
    path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")


def write_predictions(path: Path, runs: Sequence[EvaluationRun]) -> None:
    with path.open("wb") as out:
        for run in runs:
            for prediction in run.predictions:
                out.write(orjson.dumps(prediction.record(run.name)) + b"\n")


def write_chart(path: Path, runs: Sequence[EvaluationRun], title: str) -> None:
    """Per-field F1 as grouped bars (left) and the reliability curve per configuration (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(CONTRACT_FIELDS) + ["micro (all)"]
    colors = plt.get_cmap("tab10").colors
    fig, (bars, curve) = plt.subplots(1, 2, figsize=(13, 6.5), gridspec_kw={"width_ratios": [1.5, 1]})
    height = 0.8 / len(runs)
    for i, run in enumerate(runs):
        m = run.metrics
        values = [m["fields"][name]["f1"] for name in CONTRACT_FIELDS] + [m["micro"]["f1"]]
        ys = [row + (i - (len(runs) - 1) / 2) * height for row in range(len(labels))]
        ece = run.metrics["calibration"]["ece"]
        label = f"{run.name}: exact match {_pct(m['exact_match'])}, ECE {_num(3)(ece)}"
        bars.barh(ys, [v or 0.0 for v in values], height=height * 0.95, color=colors[i % 10], label=label)
        for y, v in zip(ys, values):
            bars.text((v or 0.0) + 0.01, y, "n/a" if v is None else f"{v:.2f}", va="center", fontsize=7)
    bars.set_yticks(range(len(labels)), labels)
    bars.invert_yaxis()
    bars.set_xlim(0, 1.12)
    bars.set_xlabel("F1 (a positive is a non-null value)")
    bars.set_title("Per-field F1")
    bars.grid(axis="x", alpha=0.3)

    curve.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    curve.text(0.62, 0.55, "perfectly calibrated", rotation=45, color="grey", fontsize=8, ha="center")
    for i, run in enumerate(runs):
        calibration = run.metrics["calibration"]
        filled = [b for b in calibration["bins"] if b["count"]]
        xs = [b["mean_confidence"] for b in filled]
        ys = [b["accuracy"] for b in filled]
        sizes = [20 + 180 * b["count"] / max(calibration["n"], 1) for b in filled]
        curve.plot(xs, ys, "-", color=colors[i % 10], alpha=0.7)
        curve.scatter(xs, ys, s=sizes, color=colors[i % 10], alpha=0.8, zorder=3)
    curve.set_xlim(-0.02, 1.02)
    curve.set_ylim(-0.02, 1.02)
    curve.set_aspect("equal")
    curve.set_xlabel("confidence (bin mean; dot size = messages)")
    curve.set_ylabel("exact-match rate")
    curve.set_title("Calibration (10 bins)")
    curve.grid(alpha=0.3)

    fig.suptitle(title)
    fig.legend(*bars.get_legend_handles_labels(), loc="lower center", ncol=min(len(runs), 3), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.04 * ((len(runs) + 2) // 3), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# The numbers in the docs ---------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = Path("docs/results/eval")
# The documents that may carry eval blocks, relative to the repository root.
DOCUMENTS = (Path("README.md"), Path("streamer/adapters/smollm2-135m-trades/MODEL_CARD.md"),
             Path("docs/evaluation.md"))
_BLOCK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_COMMAND_WIDTH = 110


class DocsError(ValueError):
    """A docs block that cannot be written: missing or repeated markers, no results file, no source checkout."""


def start_marker(name: str) -> str:
    return f"<!-- eval:{name}:start -->"


def end_marker(name: str) -> str:
    return f"<!-- eval:{name}:end -->"


def block_name(gold_path: Path) -> str:
    """The block (and results file) a gold file's numbers go to: its stem, `gold_test` for gold_test.jsonl."""
    name = gold_path.name.split(".")[0]
    if not _BLOCK_NAME.fullmatch(name):
        raise DocsError(f"{gold_path}: a docs block needs a file name of letters, digits, '_', '-' or '.'")
    return name


def results_path(name: str, root: Path | None = None) -> Path:
    return (root or REPO_ROOT) / RESULTS_DIR / f"{name}.json"


def replace_block(text: str, name: str, body: str, where: str = "text") -> str:
    """`text` with what lies between NAME's start and end markers replaced by `body` (idempotent)."""
    start, end = start_marker(name), end_marker(name)
    starts, ends = text.count(start), text.count(end)
    if starts == 0 or ends == 0:
        missing = start if starts == 0 else end
        raise DocsError(f"{where}: no {missing} marker; put {start} and {end} on their own lines where "
                        "the table goes")
    if starts > 1 or ends > 1:
        raise DocsError(f"{where}: {start} and {end} must each appear once (found {starts} and {ends})")
    head, rest = text.split(start, 1)
    if end not in rest:
        raise DocsError(f"{where}: {end} comes before {start}")
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


def block_names(text: str) -> list[str]:
    """The names of the eval blocks a document carries, in order."""
    return re.findall(r"<!-- eval:([A-Za-z0-9][A-Za-z0-9_.-]*):start -->", text)


def command_line(command: Sequence[str], width: int = _COMMAND_WIDTH) -> str:
    """The recorded argv as a shell command, `streamer` for the script's path, wrapped before options."""
    words = list(command)
    if words and (Path(words[0]).name == "streamer" or Path(words[0]).parts[-2:] == ("streamer", "__main__.py")):
        words[0] = "streamer"  # the console script, or `python -m streamer`
    groups: list[str] = []
    for word in words:
        if word.startswith("--") or not groups:
            groups.append(shlex.quote(word))
        else:
            groups[-1] += " " + shlex.quote(word)
    lines = [groups[0]] if groups else []
    for group in groups[1:]:
        if len(lines[-1]) + 1 + len(group) > width:
            lines.append("    " + group)
        else:
            lines[-1] += " " + group
    return " \\\n".join(lines)


def _duration(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def _describe(config: dict) -> str:
    """One configuration in words, from what eval.json recorded about its parser."""
    parser = config["parser"]
    if parser.get("kind") == "rules":
        return f"the rule-based parser ({parser.get('version')}), no model"
    adapter = f"adapter `{parser['adapter']}`" if parser.get("adapter") else "no adapter"
    if parser.get("rules_cross_check"):
        scope = parser.get("cross_check_scope")
        check = "rules cross-check on every disagreement" if scope == "all" else f"rules cross-check on {scope}"
        if parser.get("cross_check_trust") is not None:
            check += f", trust {parser['cross_check_trust']}"
    else:
        check = "no rules cross-check"
    words = (f"`{parser.get('model')}`, {adapter}, prompt `{parser.get('prompt_version')}`, "
             f"threshold {parser.get('confidence_threshold')}, {check}")
    if parser.get("second_opinion"):  # results files older than the second opinion have no such key
        words += f", second opinion `{parser['second_opinion']}`"
    if parser.get("generations_from") not in (None, config["name"]):
        words += f" (judges the generations of `{parser['generations_from']}`)"
    return words


# (row label, how to read it from a configuration's metrics, how to print it) for the docs table
DOCS_ROWS: list[tuple[str, Callable[[dict], object], Callable]] = [
    ("exact match (every field right)", lambda m: m, lambda m: f"{_pct(m['exact_match'])} ({m['exact_match_count']}/{m['n']})"),
    ("valid output", lambda m: m["valid_output_rate"], _pct),
    ("micro F1, all fields", lambda m: m["micro"]["f1"], _num(3)),
    ("flag rate (sent to review)", lambda m: m["flag_rate"], _pct),
    ("flag precision", lambda m: m["flag_precision"], _pct),
    ("flag recall", lambda m: m["flag_recall"], _pct),
    ("silent errors (published as a trade, wrong)", lambda m: m["silent_error_rate"], _pct),
    (f"flag rate that keeps silent errors at or under {SILENT_TARGET:.1%}", lambda m: m["review_for_silent_target"],
     _at_target),
    ("calibration ECE", lambda m: m["calibration"]["ece"], _num(3)),
    ("latency p50 / p95 per message", lambda m: m["latency_ms"],
     lambda lat: f"{_duration(lat['p50'])} / {_duration(lat['p95'])}"),
]


def _measured(read: Callable[[dict], object], metrics: dict) -> bool:
    """Whether a results file has the number: one written before a metric existed gets no row for it."""
    try:
        read(metrics)
    except KeyError:
        return False
    return True


# The phrasing classes issue 18 named (datasets/ANNOTATION.md): a docs block reports each one a gold file tags.
PHRASING_CLASSES = ("title_case_rfq", "amount_after_pair", "yours_mine_price", "exit_phrasing", "futures_code",
                    "swap_ccy")


def _class_table(configs: Sequence[dict]) -> list[str]:
    """Exact match and silent errors per phrasing class, per configuration ([] for results without tags)."""
    present = [tag for tag in PHRASING_CLASSES if tag in configs[0]["metrics"].get("by_tag", {})]
    if not present:
        return []

    def cell(config: dict, tag: str) -> str:
        scores = config["metrics"]["by_tag"][tag]
        return f"{_pct(scores['exact_match'])} / {_pct(scores['silent_error_rate'])}"

    rows = [[f"{tag} ({configs[0]['metrics']['by_tag'][tag]['n']})"] + [cell(c, tag) for c in configs]
            for tag in present]
    return _table(["phrasing class: exact / silent"] + [c["name"] for c in configs], rows) + [""]


def render_block(payload: dict, name: str, document: Path = Path("README.md")) -> str:
    """The markdown between NAME's markers in `document` (a path relative to the repository root)."""
    if payload.get("kind") == "bench":
        return render_bench_block(payload, name, document)
    configs = payload["configs"]
    gold = payload["gold"]
    source = RESULTS_DIR / f"{name}.json"
    chart = RESULTS_DIR / f"{name}.png"

    def link(target: Path) -> str:
        return Path(os.path.relpath(target, document.parent)).as_posix()

    names = [c["name"] for c in configs]
    lines = [
        f"<!-- generated from {source.as_posix()} by `streamer eval --update-docs` (or --render-docs): "
        "do not edit by hand -->",
        f"`{gold['path']}`: {gold['n']} messages (sha256 `{gold['sha256'][:12]}…`), "
        f"measured {payload['created_at'][:10]} by:",
        "",
        "```bash",
        command_line(payload["command"]),
        "```",
        "",
    ]
    rows = [[label] + [fmt(read(c["metrics"])) for c in configs] for label, read, fmt in DOCS_ROWS
            if all(_measured(read, c["metrics"]) for c in configs)]
    lines += _table(["metric"] + names, rows) + [""]
    fields = configs[0]["metrics"]["fields"]
    rows = [[f"{field} ({fields[field]['support']})"] + [_num(3)(c["metrics"]["fields"][field]["f1"]) for c in configs]
            for field in CONTRACT_FIELDS]
    lines += _table(["field F1 (gold values)"] + names, rows) + [""]
    lines += _class_table(configs)
    lines += [f"- `{c['name']}`: {_describe(c)}" for c in configs]
    machine = payload.get("machine")
    speed = f"Latency measured on {machine['cpu']} ({machine['cpus_usable']} CPUs usable" if machine else "Latency"
    if machine and machine.get("load_average_1_5_15_min"):
        speed += f"; load average {machine['load_average_1_5_15_min'][2]} over the run's last 15 minutes"
    speed += ")" if machine else ""
    if any(c["parser"].get("generations_from") not in (None, c["name"]) for c in configs):
        speed += "; a configuration that judges another's generations reports that one's latency"
    lines += [
        "",
        f"{speed}. Every number: [{source.as_posix()}]({link(source)}); chart: [{chart.name}]({link(chart)}); "
        f"definitions: [docs/evaluation.md]({link(Path('docs/evaluation.md'))}).",
    ]
    return "\n".join(lines)


# --- speed: labelled `streamer bench` runs -------------------------------------------

def _kafka_cell(rows: dict) -> str:
    if "kafka_throughput_msg_s" not in rows:
        return "–"
    if "kafka_ratio_to_in_process" in rows:  # a backlog: throughput
        return (f"{rows['kafka_messages']} at once: {rows['kafka_throughput_msg_s']:.2f} msg/s, "
                f"{rows['kafka_ratio_to_in_process']:.2f} of in-process")
    return (f"{rows['kafka_messages']} at {rows['kafka_produced']}: latency p50 / p95 "
            f"{_duration(rows['kafka_latency_ms_p50'])} / {_duration(rows['kafka_latency_ms_p95'])}")


BENCH_COLUMNS: list[tuple[str, Callable[[dict], str]]] = [
    ("msg/s", lambda r: f"{r['throughput_msg_s']:.2f}"),
    ("ratio to the run's prefill rate", lambda r: f"{r['ratio_to_prefill']:.2f} of {r[_prefill_key(r)]} tok/s"),
    ("latency p50 / p95", lambda r: f"{_duration(r['latency_ms_p50'])} / {_duration(r['latency_ms_p95'])}"),
    ("tokens per message: prompt / sampled / forced / guessed / rejected", lambda r: " / ".join(
        str(r.get(k, "–")) for k in ("prompt_tokens_per_message", "sampled_tokens_per_message",
                                     "forced_tokens_per_message (jump-forward, no logits)",
                                     "drafted_tokens_per_message (guessed, confirmed)",
                                     "rejected_draft_tokens_per_message"))),
    ("peak RSS", lambda r: f"{r['peak_rss_mb']:.0f} MB"),
    ("through Kafka", _kafka_cell),
]


def _prefill_key(rows: dict) -> str:
    return next(k for k in rows if k.startswith("prefill_tokens_per_s"))


def record_bench(rows: dict, command: Sequence[str], label: str, name: str = "throughput", root: Path | None = None) -> Path:
    """Add (or replace) the run LABEL in the committed bench results NAME.json, redraw its chart; the file."""
    target = results_path(name, _checkout(root or REPO_ROOT))
    payload = orjson.loads(target.read_bytes()) if target.is_file() else {"kind": "bench", "runs": []}
    run = {"label": label, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": list(command), "machine": machine(), "rows": rows}
    runs = [r for r in payload["runs"] if r["label"] != label]
    at = next((i for i, r in enumerate(payload["runs"]) if r["label"] == label), len(runs))
    payload["runs"] = runs[:at] + [run] + runs[at:]
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, payload)
    write_bench_chart(target.with_suffix(".png"), payload)
    return target


def write_bench_chart(path: Path, payload: dict) -> None:
    """Messages per second of each labelled run, with its ratio to the same run's prefill rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = payload["runs"]
    labels = [r["label"] for r in runs]
    rates = [r["rows"]["throughput_msg_s"] for r in runs]
    fig, ax = plt.subplots(figsize=(11, 0.8 + 0.45 * len(runs)))
    bars = ax.barh(labels[::-1], rates[::-1], color="#4c72b0")
    for bar, run in zip(bars, runs[::-1]):
        rows = run["rows"]
        note = f" {rows['throughput_msg_s']:.2f} msg/s, {rows['ratio_to_prefill']:.2f} of prefill"
        if "kafka_throughput_msg_s" in rows:
            note += "; Kafka: " + _kafka_cell(rows).split(": ", 1)[1]
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, note, va="center", fontsize=8)
    ax.set_xlabel("messages per second (streamer bench)")
    ax.set_xlim(0, max(rates) * 2.2)
    ax.set_title("In-process parser throughput by configuration (and through Kafka), same machine", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_bench_block(payload: dict, name: str, document: Path = Path("README.md")) -> str:
    """One table row per labelled bench run, the command under each, the machine and date."""
    source = RESULTS_DIR / f"{name}.json"
    chart = RESULTS_DIR / f"{name}.png"

    def link(target: Path) -> str:
        return Path(os.path.relpath(target, document.parent)).as_posix()

    runs = payload["runs"]
    lines = [f"<!-- generated from {source.as_posix()} by `streamer bench --update-docs LABEL` "
             "(or `streamer eval --render-docs`): do not edit by hand -->", ""]
    lines += _table(["run"] + [c for c, _ in BENCH_COLUMNS],
                    [[f"{i}. {r['label']}"] + [fmt(r["rows"]) for _, fmt in BENCH_COLUMNS] for i, r in enumerate(runs, 1)])
    lines += ["", "Commands:", ""]
    lines += [f"{i}. `{command_line(r['command'], width=1000)}`" for i, r in enumerate(runs, 1)]
    machines = sorted({f"{r['machine']['cpu']} ({r['machine']['cpus_usable']} CPUs usable)" for r in runs})
    dates = sorted({r["created_at"][:10] for r in runs})
    lines += ["", f"Measured on {', '.join(machines)}, {dates[0]}{f' to {dates[-1]}' if len(dates) > 1 else ''}. "
              f"Every number: [{source.as_posix()}]({link(source)}); chart: [{chart.name}]({link(chart)})."]
    return "\n".join(lines)


def _checkout(root: Path) -> Path:
    if not (root / "pyproject.toml").is_file() or not (root / "README.md").is_file():
        raise DocsError(f"{root} is not a source checkout (no pyproject.toml and README.md): docs blocks live in "
                        "the repository, run from an editable install (pip install -e .)")
    return root


def documents_with_block(name: str, root: Path | None = None) -> list[Path]:
    """The documents (relative paths) that carry NAME's block; a DocsError when none does."""
    root = _checkout(root or REPO_ROOT)
    found = [doc for doc in DOCUMENTS if (root / doc).is_file() and name in block_names((root / doc).read_text())]
    if not found:
        raise DocsError(f"no document has a {start_marker(name)} block (looked in "
                        f"{', '.join(d.as_posix() for d in DOCUMENTS)}); add the markers where the table goes")
    return found


def render_documents(root: Path | None = None, names: Sequence[str] | None = None) -> dict[Path, str]:
    """Every document that carries an eval block, as it should read: each block rendered from its results file.

    `names` limits it to those blocks; a block without its results file is a DocsError.
    """
    root = _checkout(root or REPO_ROOT)
    rendered: dict[Path, str] = {}
    for doc in DOCUMENTS:
        path = root / doc
        if not path.is_file():
            continue
        text = original = path.read_text()
        for name in block_names(original):
            if names is not None and name not in names:
                continue
            source = results_path(name, root)
            if not source.is_file():
                raise DocsError(f"{doc.as_posix()}: block {name!r} has no results file {source.relative_to(root)}; "
                                f"run streamer eval --gold <{name} gold file> ... --update-docs")
            payload = orjson.loads(source.read_bytes())
            text = replace_block(text, name, render_block(payload, name, doc), doc.as_posix())
        if block_names(original):
            rendered[path] = text
    return rendered


def update_documents(root: Path | None = None, names: Sequence[str] | None = None) -> list[Path]:
    """Rewrite the eval blocks from the committed results files; the documents that changed."""
    changed = []
    for path, text in render_documents(root, names).items():
        if path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def publish_results(eval_json: Path, chart: Path, name: str, root: Path | None = None) -> Path:
    """Copy a run's eval.json (and eval.png) to the committed results folder as NAME.json (NAME.png)."""
    target = results_path(name, _checkout(root or REPO_ROOT))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(eval_json, target)
    if chart.is_file():
        shutil.copyfile(chart, target.with_suffix(".png"))
    return target
