"""Evaluation outputs: a markdown table (stdout), a JSON file with every number, a PNG chart, predictions JSONL.

Every output takes a list of runs, one per configuration: a single run is the
one-column case of the compare mode, so both read the same way.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import orjson

from schemas import CONTRACT_FIELDS
from streamer.evaluation.harness import EvaluationRun

METRIC_DEFINITIONS = "streamer/evaluation/metrics.py (module docstring) and docs/evaluation.md"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(digits: int) -> Callable[[float | None], str]:
    return lambda value: "–" if value is None else f"{value:.{digits}f}"


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
        "configs": [
            {"name": run.name, "parser": run.description,
             "errors": sum(p.error is not None for p in run.predictions), "metrics": run.metrics}
            for run in runs
        ],
    }


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
