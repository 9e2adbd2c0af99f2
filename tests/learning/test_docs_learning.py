"""docs/learning.md's before/after tables are written by code from the committed gate reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamer.evaluation.report import replace_block
from streamer.learning.gate import render_docs_block

ROOT = Path(__file__).resolve().parents[2]


RUNS = sorted(path.parent.name for path in (ROOT / "docs/results/learning").glob("*/gate.json"))


@pytest.mark.parametrize("run", RUNS)
def test_the_learning_page_carries_each_committed_gate_table(run):
    page = (ROOT / "docs/learning.md").read_text()
    payload = json.loads((ROOT / f"docs/results/learning/{run}/gate.json").read_text())
    assert replace_block(page, f"learning-{run}", render_docs_block(payload)) == page, (
        f"docs/learning.md differs from docs/results/learning/{run}/gate.json: run `streamer learn report "
        f"docs/results/learning/{run}/gate.json --update-docs docs/learning.md --block learning-{run}`")
    assert payload["sets"]["corrections_heldout"]["candidate"]["n"] > 0
