"""Step 3 of the loop: may a retrained adapter replace the one in production?

Both adapters parse the same sets in the default configuration (cross-check
and limits on, as a worker runs): the frozen blind test set, the held-out part
of the corrections, and the old hand-written and gold dev sets (forgetting).
The candidate is promoted only if every check passes:

- exact match on each set does not drop by more than the noise margin
  (`margin` of the set's size, at least one message);
- silent errors (wrong trades published) do not rise, by even one, on the
  blind sets and the held-out corrections;
- on the forgetting sets (the old dev sets) both stay within the noise margin:
  the issue's "forgetting measures stay within bounds". These sets are
  development data (a blend's weight is chosen on them), so one flipped line
  among hundreds there is noise, not evidence; the blind sets carry the
  strict rule;
- English perplexity (plain text, the adapter card's number) drifts by at most
  `max_perplexity_drift` from production's: a cheap sign the model forgot language.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamer.settings import Settings

BLIND_SETS = (Path("datasets/blind_v1.jsonl"),)
FORGETTING_SETS = (Path("datasets/splits/hand_dev.jsonl"), Path("datasets/splits/gold_dev.jsonl"))


@dataclass(frozen=True)
class GateRule:
    margin: float = 0.01              # exact match may drop by this share of a set (noise), at least one message
    max_perplexity_drift: float = 0.05  # candidate / production English perplexity - 1

    def allowed_drop(self, n: int) -> int:
        return max(1, math.floor(self.margin * n))


@dataclass
class Check:
    name: str
    production: float | int | None
    candidate: float | int | None
    limit: str
    passed: bool


@dataclass
class GateDecision:
    promote: bool
    checks: list[Check] = field(default_factory=list)
    sets: dict = field(default_factory=dict)   # set name -> {"n", model -> {exact, silent, review}}

    def as_dict(self) -> dict:
        return {"promote": self.promote, "checks": [asdict(check) for check in self.checks], "sets": self.sets}


def set_scores(metrics: dict) -> dict:
    """The counts a gate compares, from `summarize`'s metrics."""
    n = metrics["n"]
    return {"exact": metrics["exact_match_count"], "silent": round(metrics["silent_error_rate"] * n),
            "review": round(metrics["flag_rate"] * n), "n": n}


def set_checks(name: str, production: dict, candidate: dict, rule: GateRule, forgetting: bool = False) -> list[Check]:
    """One set's two checks: exact match within the margin; silent errors not up (forgetting sets: within it)."""
    drop = rule.allowed_drop(production["n"])
    rise = drop if forgetting else 0
    return [Check(f"{name}: exact match", production["exact"], candidate["exact"], f"≥ production - {drop}",
                  candidate["exact"] >= production["exact"] - drop),
            Check(f"{name}: silent errors", production["silent"], candidate["silent"],
                  f"≤ production + {rise}" if rise else "≤ production", candidate["silent"] <= production["silent"] + rise)]


def decide(scores: dict[str, dict[str, dict]], perplexity: dict[str, float | None], rule: GateRule,
           forgetting: Collection[str] = ()) -> GateDecision:
    """`scores[set][model]` with models 'production' and 'candidate'; every check must pass.

    `forgetting` names the sets that are old development data (bounded drift) rather than blind ones.
    """
    checks = []
    for name, by_model in scores.items():
        checks += set_checks(name, by_model["production"], by_model["candidate"], rule, forgetting=name in forgetting)
    before, after = perplexity.get("production"), perplexity.get("candidate")
    if before and after:
        checks.append(Check("English perplexity", before, after, f"≤ production × {1 + rule.max_perplexity_drift:g}",
                            after <= before * (1 + rule.max_perplexity_drift)))
    else:
        checks.append(Check("English perplexity", before, after, "measured for both", False))
    return GateDecision(all(check.passed for check in checks), checks, scores)


def card_perplexity(adapter: Path) -> float | None:
    """The tuned English perplexity from the adapter card beside `adapter` (written by fine-tuning)."""
    card = adapter.with_name("adapter.json")
    try:
        return float(json.loads(card.read_text())["perplexity_english"]["tuned"])
    except (OSError, KeyError, TypeError, ValueError):
        return None


def evaluate(settings: Settings, adapters: dict[str, Path], sets: dict[str, Path], console=None) -> dict:
    """`scores[set][model]` for each adapter on each set, default configuration, one model loaded at a time."""
    from streamer.evaluation.harness import close_parser, load_gold, run_parser
    from streamer.evaluation.metrics import summarize
    from streamer.parsing import Parser

    golds = {name: load_gold(path) for name, path in sets.items()}
    scores: dict[str, dict] = {name: {} for name in sets}
    for model, adapter in adapters.items():
        parser = Parser(settings.model_copy(update={"adapter_path": str(adapter)}))
        try:
            for name, gold in golds.items():
                predictions = run_parser(parser, gold, f"{model} on {name}", console=console)
                scores[name][model] = set_scores(summarize([p.case() for p in predictions]))
        finally:
            close_parser(parser)
    return scores


def render_table(decision: GateDecision) -> str:
    lines = ["| check | production | candidate | rule | passed |", "|---|---:|---:|---|---|"]
    for check in decision.checks:
        lines.append(f"| {check.name} | {_cell(check.production)} | {_cell(check.candidate)} | {check.limit} | "
                     f"{'yes' if check.passed else '**no**'} |")
    lines.append("")
    lines.append(f"**{'promote' if decision.promote else 'reject'}**")
    return "\n".join(lines)


def render_docs_block(payload: dict) -> str:
    """A committed gate.json as the before/after table of docs/learning.md (per set: exact match, silent errors)."""
    production, candidate = payload["production_version"], payload["candidate_version"]
    lines = [f"| set | n | exact match {production} | exact match {candidate} | silent errors {production} | "
             f"silent errors {candidate} |", "|---|---:|---:|---:|---:|---:|"]
    for name, by_model in payload["sets"].items():
        before, after = by_model["production"], by_model["candidate"]
        n = before["n"]
        lines.append(f"| {name} | {n} | {_share(before['exact'], n)} | {_share(after['exact'], n)} | "
                     f"{_share(before['silent'], n)} | {_share(after['silent'], n)} |")
    perplexity = payload.get("perplexity", {})
    lines += ["", f"English perplexity: {production} {_cell(perplexity.get('production'))}, "
                  f"{candidate} {_cell(perplexity.get('candidate'))}. Gate: "
                  f"**{'promoted' if payload['promote'] else 'rejected'}**."]
    return "\n".join(lines)


def _share(count: int, n: int) -> str:
    return f"{100 * count / n:.1f}% ({count})" if n else "–"


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def write_report(out_dir: Path, decision: GateDecision, meta: dict) -> list[Path]:
    """gate.json, gate.md and gate.png (exact match and silent errors per set, production vs candidate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "gate.json", out_dir / "gate.md", out_dir / "gate.png"]
    paths[0].write_text(json.dumps({**meta, **decision.as_dict()}, indent=2, default=str) + "\n")
    paths[1].write_text(f"# Gate: {meta.get('candidate_version', 'candidate')} vs "
                        f"{meta.get('production_version', 'production')}\n\n{render_table(decision)}\n")
    names = list(decision.sets)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, title in ((axes[0], "exact", "exact match (%)"), (axes[1], "silent", "silent errors (%)")):
        for offset, (model, colour) in enumerate((("production", "#9ecae1"), ("candidate", "#e6550d"))):
            values = [100 * decision.sets[name][model][key] / max(1, decision.sets[name][model]["n"]) for name in names]
            ax.bar([i + (offset - 0.5) * 0.38 for i in range(len(names))], values, width=0.38, color=colour,
                   label=model)
        ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"gate: {'promoted' if decision.promote else 'rejected'}", fontsize=11)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
