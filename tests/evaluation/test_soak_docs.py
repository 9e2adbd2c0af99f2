"""docs/reliability.md's figures and README's summary are written by code from docs/results/reliability/*.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.evaluation import soak

ROOT = Path(__file__).resolve().parents[2]


def test_the_reliability_blocks_match_the_committed_results():
    for path, text in soak.render_documents(ROOT).items():
        assert path.read_text() == text, (
            f"{path.relative_to(ROOT)} differs from docs/results/reliability/*.json: run `streamer bench soak --render-docs`")


@pytest.mark.parametrize("document", sorted(soak.DOCS_BLOCKS))
def test_each_committed_run_is_in_the_document_with_its_lost_count(document):
    text = (ROOT / document).read_text()
    for _, payload in soak.committed_results(ROOT):
        assert soak.run_label(payload) in text
        assert payload["reads"]["read_committed"]["lost"] == 0


@pytest.mark.parametrize("text, message", [
    ("no markers", "needs <!-- reliability:figures:start -->"),
    ("<!-- reliability:figures:end -->\n<!-- reliability:figures:start -->", "needs"),
])
def test_replace_block_refuses_missing_markers(text, message):
    with pytest.raises(soak.DocsError, match=message):
        soak.replace_block(text, "figures", "| a |", "docs/reliability.md")
