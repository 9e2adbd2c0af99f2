"""Step 2b of the loop: pull a retrained adapter part of the way back to production (weight-space ensembling).

A continued adapter gains on its corrections but moves decisions it was not
asked to move (the forgetting the gate refuses). Interpolating the weights of
the fine-tuned and the original model (Wortsman et al., "Robust fine-tuning of
zero-shot models", WiSE-FT) keeps much of the gain and much of the old
behaviour. For LoRA the interpolation is exact: the blend's weight delta
w·ΔW_candidate + (1 - w)·ΔW_production is one adapter of rank r_c + r_p whose
A is both A's stacked and whose B is both scaled B's side by side.

The weight is chosen on development data only (the old dev sets and the
training corrections' selection slice), never on the sets the gate treats as
blind.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamer.learning.gate import GateRule, set_checks
from streamer.parsing.merged import LoraWeights, MergeError

def blend_adapters(candidate: LoraWeights, production: LoraWeights, weight: float) -> LoraWeights:
    """The adapter whose delta is `weight` × the candidate's plus (1 - `weight`) × production's, exactly.

    Scales are folded into B, so the result has alpha == rank (scale 1) and the
    two inputs may have different ranks and alphas. Weight 1 is the candidate's
    delta, weight 0 production's (each carried at the blend's rank).
    """
    import numpy as np

    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight {weight:g} is outside [0, 1]")
    if set(candidate.pairs) != set(production.pairs):
        extra = sorted(set(candidate.pairs) ^ set(production.pairs))
        raise MergeError(f"the adapters patch different tensors (e.g. {extra[0]}): not the same base and layout")
    pairs = {}
    for name, (a_candidate, b_candidate) in candidate.pairs.items():
        a_production, b_production = production.pairs[name]
        if a_candidate.shape[1] != a_production.shape[1] or b_candidate.shape[0] != b_production.shape[0]:
            raise MergeError(f"{name}: the adapters' shapes differ ({b_candidate.shape[0]}x{a_candidate.shape[1]} vs "
                             f"{b_production.shape[0]}x{a_production.shape[1]}): not the same base")
        a = np.concatenate([a_candidate, a_production], axis=0).astype(np.float32)
        b = np.concatenate([weight * candidate.scale * b_candidate, (1.0 - weight) * production.scale * b_production],
                           axis=1).astype(np.float32)
        pairs[name] = (a, b)
    rank = candidate.rank + production.rank
    return LoraWeights(alpha=float(rank), rank=rank, pairs=pairs)


@dataclass(frozen=True)
class WeightScore:
    """One blend weight's counts on the development sets: {set: {"exact", "silent", "review", "n"}}."""

    weight: float
    sets: dict[str, dict]


def passes_dev_rule(scores: dict[str, dict], production: dict[str, dict], rule: GateRule,
                    skip: tuple[str, ...] = ()) -> bool:
    """The gate's own rule for its forgetting sets (exact and silent errors within the margin), on the dev sets."""
    return all(check.passed for name, counts in scores.items() if name not in skip
               for check in set_checks(name, production[name], counts, rule, forgetting=True))


def choose_weight(scored: list[WeightScore], production: dict[str, dict], selection_set: str | None,
                  rule: GateRule | None = None) -> tuple[WeightScore | None, list[float]]:
    """The blend to send to the gate, and the weights that passed the dev rule.

    Among the weights that pass the gate's rule on the old dev sets, the one
    right on most of the selection slice (the corrections' class); ties go to
    fewer errors on the dev sets, then to the larger weight (more of what was
    learned). None when no weight passes.
    """
    skip = (selection_set,) if selection_set else ()
    rule = rule or GateRule()
    passing = [score for score in scored if passes_dev_rule(score.sets, production, rule, skip=skip)]

    def key(score: WeightScore):
        on_class = score.sets[selection_set]["exact"] if selection_set in score.sets else 0
        dev_errors = sum(c["n"] - c["exact"] for name, c in score.sets.items() if name != selection_set)
        return (on_class, -dev_errors, score.weight)

    return (max(passing, key=key) if passing else None), [score.weight for score in passing]


def english_perplexity(weights: LoraWeights, base_path) -> dict[str, float]:
    """The adapter card's forgetting number for a blend: plain-English perplexity, base and with the adapter."""
    from streamer.finetune import export, train

    config = train.TrainConfig(rank=weights.rank, alpha=weights.alpha, dropout=0.0)
    model = train.add_lora(train.load_base_model(base_path, "cpu"), config)
    export.load_lora_weights(model, weights)
    return train.forgetting_check(model, train.ParserTokens(base_path), "cpu")


def plot_weights(scored: list[WeightScore], production: dict[str, dict], chosen: float | None, path) -> None:
    """Exact match per development set against the blend weight, production as weight 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, before in production.items():
        xs = [0.0] + [score.weight for score in scored]
        ys = [100 * c["exact"] / max(1, c["n"]) for c in [before, *(s.sets[name] for s in scored)]]
        ax.plot(xs, ys, marker="o", label=f"{name} (n={before['n']})")
    if chosen is not None:
        ax.axvline(chosen, color="grey", linestyle="--", linewidth=1, label=f"chosen w={chosen:g}")
    ax.set_xlabel("blend weight (0 = production, 1 = retrained candidate)")
    ax.set_ylabel("exact match (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render_blend_table(payload: dict) -> str:
    """A blend report (blend.json) as a table: exact / silent per development set, production and each weight."""
    names = list(payload["production"])
    lines = ["| weight | " + " | ".join(f"{name} (n={payload['production'][name]['n']}) exact / silent" for name in names)
             + " |", "|---|" + "---:|" * len(names)]
    rows = [("production", payload["production"]), *payload["weights"].items()]
    for label, counts in rows:
        mark = " (chosen)" if label != "production" and float(label) == payload.get("chosen") else ""
        lines.append(f"| {label}{mark} | " + " | ".join(f"{counts[n]['exact']} / {counts[n]['silent']}" for n in names)
                     + " |")
    return "\n".join(lines)
