"""A tiny fine-tune through export: the GGUF adapter llama.cpp loads, parses with, and agrees with PyTorch on."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

pytestmark = [pytest.mark.integration, pytest.mark.finetune]

TRAIN = [
    ("buy 10m cable", '"order","side":"buy","asset_class":"fx_spot","symbol":"GBPUSD","quantity":10000000,"currency":"GBP"'),
    ("sell 5m eurusd", '"order","side":"sell","asset_class":"fx_spot","symbol":"EURUSD","quantity":5000000,"currency":"EUR"'),
    ("px in 20 usdjpy", '"rfq","side":"two_way","asset_class":"fx_spot","symbol":"USDJPY","quantity":20000000,"currency":"USD"'),
    ("buy 200 AAPL", '"order","side":"buy","asset_class":"equity","symbol":"AAPL","quantity":200'),
    ("sell 300 MSFT", '"order","side":"sell","asset_class":"equity","symbol":"MSFT","quantity":300'),
    ("buy 2 btc", '"order","side":"buy","asset_class":"crypto","symbol":"BTCUSD","quantity":2'),
    ("sell 10 eth", '"order","side":"sell","asset_class":"crypto","symbol":"ETHUSD","quantity":10'),
    ("cxl my cable order", '"cancel","asset_class":"fx_spot","symbol":"GBPUSD","currency":"GBP"'),
    ("good morning all", '"none"'),
    ("lunch anyone?", '"none"'),
    ("buy 15m aussie", '"order","side":"buy","asset_class":"fx_spot","symbol":"AUDUSD","quantity":15000000,"currency":"AUD"'),
    ("sell 7m kiwi", '"order","side":"sell","asset_class":"fx_spot","symbol":"NZDUSD","quantity":7000000,"currency":"NZD"'),
    ("px in 5 cable", '"rfq","side":"two_way","asset_class":"fx_spot","symbol":"GBPUSD","quantity":5000000,"currency":"GBP"'),
    ("buy 100 NVDA", '"order","side":"buy","asset_class":"equity","symbol":"NVDA","quantity":100'),
    ("sell 3 sol", '"order","side":"sell","asset_class":"crypto","symbol":"SOLUSD","quantity":3'),
    ("market is quiet today", '"none"'),
]


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"text": t, "expected": orjson.loads('{"intent":' + e + "}")}) + b"\n"
                              for t, e in TRAIN))
    return path


@pytest.fixture(scope="module")
def tiny_run(records, tmp_path_factory):
    """A few LoRA steps on 16 examples, exported to a GGUF adapter with its card."""
    pytest.importorskip("torch")
    from streamer.finetune import export, train
    from streamer.parsing.model import bundled_model_path

    base = bundled_model_path()
    out = tmp_path_factory.mktemp("adapter")
    tokens = train.ParserTokens(base)
    examples, skipped = train.encode_records(train.read_records(records), tokens, 256)
    assert len(examples) == 16 and not skipped
    config = train.TrainConfig(steps=6, batch_size=4, lr=3e-3, eval_every=3, dev_limit=4, warmup_steps=1)
    train.set_torch_threads(None)
    model = train.add_lora(train.load_base_model(base), config)
    result = train.train_lora(model, examples, examples, config, "cpu")
    export.write_adapter_gguf(export.lora_weights(model), out / "adapter.gguf", base.name)
    (out / "adapter.json").write_bytes(orjson.dumps({"id": "tiny-test", "prompt_version": "tuned-v1", "base_model": base.name}))
    return base, out / "adapter.gguf", model, tokens, result


def test_training_lowers_the_answer_loss(tiny_run):
    *_, result = tiny_run
    assert result.steps_done == 6
    assert result.history["dev_loss"][0] > 2 * result.best_dev_loss  # step 0 is the untuned model


def test_adapter_file_is_a_llama_cpp_lora(tiny_run):
    import gguf

    _, adapter, *_ = tiny_run
    reader = gguf.GGUFReader(str(adapter))
    fields = {name: f.contents() for name, f in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "llama" and fields["adapter.lora.alpha"] == 32.0
    tensors = {t.name: [int(n) for n in t.shape] for t in reader.tensors}
    assert len(tensors) == 30 * 7 * 2  # 30 blocks x q,k,v,o,gate,up,down x (a, b)
    assert tensors["blk.0.attn_q.weight.lora_a"] == [576, 16]  # GGUF ne: [in, rank]
    assert tensors["blk.0.attn_q.weight.lora_b"] == [16, 576]  # [rank, out]
    assert tensors["blk.29.attn_k.weight.lora_b"] == [16, 192]  # 3 kv heads x 64
    assert tensors["blk.7.ffn_down.weight.lora_a"] == [1536, 16]


def test_parser_loads_the_adapter_and_parses(tiny_run):
    from schemas import LowConfidence, Trade
    from streamer.parsing import Parser
    from streamer.settings import Settings

    base, adapter, *_ = tiny_run
    parser = Parser(Settings(model_path=base, adapter_path=str(adapter), n_threads=2))
    assert parser.prompt_version == "tuned-v1" and parser.adapter_id == "tiny-test"
    result = parser.parse("buy 10m cable")
    assert isinstance(result, (Trade, LowConfidence))
    assert result.provenance.adapter == "tiny-test"


def test_llama_cpp_with_adapter_matches_pytorch(tiny_run):
    """Same next-token log-probabilities over the answer, within quantization noise.

    Measured on this tiny adapter: max gap 0.30 exported correctly, 3.47 with the
    q/k `lora_b` rows left in Hugging Face order. Greedy JSON equality is not
    asserted here: a 6-step model has near-ties that Q4_1 rounding flips (one
    position in 180 did); `streamer finetune` checks it on the real adapter.
    """
    from streamer.finetune.export import check_parity

    base, adapter, model, tokens, _ = tiny_run
    parity = check_parity(model, tokens, base, adapter, ["buy 10m cable", "good morning all"], n_threads=2)
    assert len(parity.messages) == 2
    assert parity.teacher_forced_top1 >= 0.95, parity.as_dict()
    assert parity.teacher_forced_max_logprob_diff < 1.0, parity.as_dict()
    assert all(m["parser"] and m["torch"] for m in parity.messages)


def test_case_variants_encode_with_the_cased_spans(records):
    """`--case-variants` examples: llama.cpp's tokens of the cased line, and a target that copies its casing."""
    from streamer.finetune import train
    from streamer.parsing.model import bundled_model_path

    tokens = train.ParserTokens(bundled_model_path())
    pairs, skipped = train.case_variants(train.read_records(records), 1.0, seed=0)
    examples, too_long = train.encode_pairs(pairs, tokens, 256)
    assert len(examples) == 16 and not skipped and not too_long  # every line here changes with either casing
    (ids, labels), (variant, target) = examples[0], pairs[0]
    assert variant["text"] in ("BUY 10M CABLE", "Buy 10m Cable") and target.symbol in ("CABLE", "Cable")
    prompt = tokens.prompt_ids(variant["text"])
    assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [train.IGNORE] * len(prompt)
    answer = tokens.detokenize([i for i in labels if i != train.IGNORE][:-1])
    assert answer == target.to_json_text() and f'"symbol":"{target.symbol}"' in answer


def test_bad_input_is_a_one_line_error(tmp_path):
    pytest.importorskip("torch")
    from streamer.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "buy 10m cable", "expected": {"intent": "order"}}\nnot json\n')
    result = CliRunner().invoke(main, ["finetune", "--train", str(bad), "--dev", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "bad.jsonl:2: invalid JSON" in result.output
    assert result.output.count("\n") == 1


def test_training_continues_from_an_adapter_file(tiny_run, records):
    """`--init-adapter`: the file's matrices go back into a fresh PEFT model in Hugging Face order."""
    import numpy as np

    from streamer.finetune import export, train

    base, adapter, model, tokens, _ = tiny_run
    fresh = train.add_lora(train.load_base_model(base), train.TrainConfig())
    export.load_lora_weights(fresh, export.read_adapter_gguf(adapter))
    trained, reloaded = export.lora_weights(model), export.lora_weights(fresh)
    assert reloaded.pairs.keys() == trained.pairs.keys() and reloaded.alpha == trained.alpha
    for name, (a, b) in trained.pairs.items():  # equal up to the file's f16 rounding
        np.testing.assert_allclose(reloaded.pairs[name][0], a, rtol=1e-2, atol=1e-4)
        np.testing.assert_allclose(reloaded.pairs[name][1], b, rtol=1e-2, atol=1e-4)
    # continuing: the adapter given is the reference at step 0, never handed back as "best"
    examples, _ = train.encode_records(train.read_records(records), tokens, 256)
    config = train.TrainConfig(steps=2, batch_size=4, eval_every=1, dev_limit=4, warmup_steps=1, start_is_candidate=False)
    result = train.train_lora(fresh, examples, examples, config, "cpu")
    assert result.history["dev_step"] == [0, 1, 2] and result.best_step in (1, 2)
    with pytest.raises(export.ExportError, match="rank 16"):
        export.load_lora_weights(train.add_lora(train.load_base_model(base), train.TrainConfig(rank=8)),
                                 export.read_adapter_gguf(adapter))


@pytest.mark.parametrize("n_head, rows", [(9, 576), (3, 192), (2, 8)])  # q of SmolLM2, its k (3 kv heads), tiny
def test_permute_rows_inverse_goes_back(n_head, rows):
    import numpy as np

    from streamer.finetune.export import permute_rows

    weights = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4)
    permuted = permute_rows(weights, n_head)
    assert not np.array_equal(permuted, weights)
    np.testing.assert_array_equal(permute_rows(permuted, n_head, inverse=True), weights)
