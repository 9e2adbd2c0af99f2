"""docs/learning.md's before/after tables are written by code from the committed gate reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamer.evaluation.report import replace_block
from streamer.learning.blend import render_blend_table
from streamer.learning.gate import render_docs_block

ROOT = Path(__file__).resolve().parents[2]


REPORTS = sorted(path.relative_to(ROOT / "docs/results/learning") for pattern in ("*/gate.json", "*/blend.json")
                 for path in (ROOT / "docs/results/learning").glob(pattern))


@pytest.mark.parametrize("report", REPORTS, ids=str)
def test_the_learning_page_carries_each_committed_report_table(report):
    """Each run's gate table (block learning-RUN) and blend table (learning-RUN-blend) come from its report."""
    page = (ROOT / "docs/learning.md").read_text()
    payload = json.loads((ROOT / "docs/results/learning" / report).read_text())
    run, blend = report.parent.name, report.name == "blend.json"
    block = f"learning-{run}-blend" if blend else f"learning-{run}"
    table = render_blend_table(payload) if blend else render_docs_block(payload)
    assert replace_block(page, block, table) == page, (
        f"docs/learning.md differs from docs/results/learning/{report}: run `streamer learn report "
        f"docs/results/learning/{report} --update-docs docs/learning.md --block {block}`")
    if blend:
        assert payload["chosen"] in payload["passing"]
    else:
        assert payload["sets"]["corrections_heldout"]["candidate"]["n"] > 0
