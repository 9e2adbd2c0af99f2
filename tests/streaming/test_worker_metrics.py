"""Worker metrics and probes: what one batch adds to each series (no broker), then /metrics, /health and /ready
scraped over HTTP from a real worker of each runner (real embedded broker, real bundled model)."""

from __future__ import annotations

import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from streaming_helpers import WorkerProcess, fresh_stream_settings, output_topics, produce_raw, read_all, wait_until

from schemas import ChatMessage, DeadLetter, LowConfidence, Provenance, Reason, Trade
from streamer.settings import Settings
from streamer.streaming.broker import free_port, is_listening
from streamer.streaming.health import HEALTH_PATH, METRICS_PATH, READY_PATH, Probes, ProbeServer
from streamer.streaming.metrics import WorkerMetrics, consumer_lag
from streamer.streaming.pipeline import Topics

TOPICS = Topics.from_settings(Settings())
MESSAGE = ChatMessage(text="buy 10m cable", channel="fx")


def trade(intent: str = "order", version: str | None = None) -> Trade:
    provenance = Provenance(model="m.gguf", model_sha256="0" * 64, adapter="a", prompt_version="p1", latency_ms=1.0,
                            prompt_tokens_evaluated=4, generated_tokens=9, model_version=version)
    return Trade(intent=intent, confidence=0.9, message_id=MESSAGE.message_id, provenance=provenance)


def review(*codes: str) -> LowConfidence:
    return LowConfidence(message_id=MESSAGE.message_id, message=MESSAGE, confidence=0.3,
                         reasons=[Reason(code=code, field="symbol") for code in codes])


def dead(reason: str) -> DeadLetter:
    return DeadLetter.from_bytes(b"\xff", reason, "detail")


def sample(metrics: WorkerMetrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("batch, expected", [
    ([trade()], {("tradechat_messages_consumed_total", ()): 1,
                 ("tradechat_outputs_total", (("topic", "trades.parsed"), ("kind", "trade"))): 1}),
    ([trade("none"), trade("rfq")], {
        ("tradechat_outputs_total", (("topic", "chat.nontrade"), ("kind", "trade"))): 1,
        ("tradechat_outputs_total", (("topic", "trades.parsed"), ("kind", "trade"))): 1,
        ("tradechat_batch_size_sum", ()): 2}),
    # a reason code counts once per result, however many fields it names
    ([review("rules_disagree", "rules_disagree", "low_confidence"), review("instruction_like")], {
        ("tradechat_outputs_total", (("topic", "trades.review"), ("kind", "low_confidence"))): 2,
        ("tradechat_review_reasons_total", (("reason", "rules_disagree"),)): 1,
        ("tradechat_review_reasons_total", (("reason", "low_confidence"),)): 1,
        ("tradechat_review_reasons_total", (("reason", "instruction_like"),)): 1,
        ("tradechat_review_reasons_total", (("reason", "limit_exceeded"),)): 0}),
    ([dead("not_json"), dead("not_json"), dead("processing_crash"), trade()], {
        ("tradechat_messages_consumed_total", ()): 4,
        ("tradechat_outputs_total", (("topic", "chat.deadletter"), ("kind", "dead_letter"))): 3,
        ("tradechat_deadletters_total", (("reason", "not_json"),)): 2,
        ("tradechat_deadletters_total", (("reason", "processing_crash"),)): 1,
        ("tradechat_batch_size_count", ()): 1, ("tradechat_parse_seconds_count", ()): 1}),
])
def test_a_batch_adds_its_results_to_each_series(batch, expected):
    metrics = WorkerMetrics(TOPICS)
    metrics.record_batch([(result, b"key") for result in batch], parse_s=0.7)
    got = {(name, labels): sample(metrics, name, **dict(labels)) for name, labels in expected}
    assert got == expected
    assert sample(metrics, "tradechat_parse_seconds_sum") == pytest.approx(0.7)
    assert sum(metrics.published.values()) == len(batch)


@pytest.mark.parametrize("restarts_after_each_batch, crashes", [
    ([0, 0, 0], 0),
    ([1, 1, 3], 3),     # ParserProcess.restarts only grows: the counter adds what is new
    ([2, 0, 1], 3),     # a live model swap: the new process counts from 0
])
def test_parser_crashes_follow_the_parsers_restart_count(restarts_after_each_batch, crashes):
    metrics = WorkerMetrics(TOPICS)
    for restarts in restarts_after_each_batch:
        metrics.record_batch([(trade(), None)], 0.1, restarts)
    assert sample(metrics, "tradechat_parser_crashes_total") == crashes


@pytest.mark.parametrize("start_version, batch_version, labels", [
    (None, None, {"version": "", "model": "m.gguf", "adapter": "a", "prompt_version": "p1"}),
    ("v3", None, {"version": "v3", "model": "m.gguf", "adapter": "a", "prompt_version": "p1"}),
    ("v3", "v4", {"version": "v4", "model": "m.gguf", "adapter": "a", "prompt_version": "p1"}),  # swapped live
])
def test_model_info_names_the_version_the_results_came_from(start_version, batch_version, labels):
    metrics = WorkerMetrics(TOPICS, start_version)
    assert sample(metrics, "tradechat_model_info", version=start_version or "", model="", adapter="",
                  prompt_version="") == 1
    metrics.record_batch([(dead("not_json"), None), (trade(version=batch_version), None)], 0.1)
    [family] = [f for f in text_string_to_metric_families(metrics.exposition().decode())
                if f.name == "tradechat_model_info"]
    assert [s.labels for s in family.samples] == [labels]


@pytest.mark.parametrize("highs, committed, starts, expected", [
    ({("t", 0): 10, ("t", 1): 5}, {("t", 0): 7, ("t", 1): 5}, {}, {("t", 0): 3, ("t", 1): 0}),
    ({("t", 0): 10}, {("t", 0): None}, {("t", 0): 4}, {("t", 0): 6}),   # never committed: from the log start
    ({("t", 0): 10}, {("t", 0): -1001}, {}, {("t", 0): 10}),            # librdkafka's OFFSET_INVALID
    ({("t", 0): 3}, {("t", 0): 5}, {}, {("t", 0): 0}),                  # Tansu's undercounted high watermark
    ({("t", 0): None, ("t", 1): 2}, {}, {}, {("t", 1): 2}),             # no high watermark yet: left out
])
def test_consumer_lag_is_high_watermark_minus_committed(highs, committed, starts, expected):
    assert consumer_lag(highs, committed, starts) == expected


def test_a_partition_no_longer_assigned_leaves_the_lag_gauge():
    metrics = WorkerMetrics(TOPICS)
    metrics.set_consumer_lag({("chat.raw", 0): 4, ("chat.raw", 1): 2})
    metrics.set_consumer_lag({("chat.raw", 1): 1})
    lag = {s.labels["partition"]: s.value for f in text_string_to_metric_families(metrics.exposition().decode())
           if f.name == "tradechat_consumer_lag" for s in f.samples}
    assert lag == {"1": 1.0}


def test_two_workers_in_one_process_keep_their_own_series():
    first, second = WorkerMetrics(TOPICS), WorkerMetrics(TOPICS)  # the global registry would refuse the second
    first.record_batch([(trade(), None)], 0.1)
    assert (sample(first, "tradechat_messages_consumed_total"), sample(second, "tradechat_messages_consumed_total")) \
        == (1, 0)


def get(port: int, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


@pytest.mark.parametrize("alive, ready, path, status, answer", [
    (None, None, HEALTH_PATH, 200, {"status": "ok"}),
    (None, None, READY_PATH, 200, {"status": "ok"}),
    (None, "no partition of chat.raw is assigned to this worker", READY_PATH, 503,
     {"error": "no partition of chat.raw is assigned to this worker"}),
    ("the consume loop has stopped", None, HEALTH_PATH, 503, {"error": "the consume loop has stopped"}),
    (None, None, "/nothing", 404, {"error": "no page /nothing"}),
])
def test_probe_server_answers_health_and_ready_in_one_json_line(alive, ready, path, status, answer):
    server = ProbeServer(Probes(WorkerMetrics(TOPICS), lambda: alive, lambda: ready), "127.0.0.1", free_port())
    try:
        got_status, content_type, body = get(server.server.server_address[1], path)
    finally:
        server.close()
    assert (got_status, content_type, orjson.loads(body)) == (status, "application/json", answer)
    assert b"\n" not in body


def test_probe_server_serves_the_exposition():
    metrics = WorkerMetrics(TOPICS)
    metrics.record_batch([(trade(), None), (dead("oversize"), None)], 0.2)
    server = ProbeServer(Probes(metrics, lambda: None, lambda: None), "127.0.0.1", free_port())
    try:
        status, content_type, body = get(server.server.server_address[1], METRICS_PATH)
    finally:
        server.close()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert (status, content_type.split(";")[0]) == (200, "text/plain")
    assert [s.value for s in families["tradechat_messages_consumed"].samples if s.name.endswith("_total")] == [2.0]


# -- a real worker, scraped over HTTP ---------------------------------------------------------------------------


def chat(text: str, channel: str) -> bytes:
    return orjson.dumps({"text": text, "channel": channel, "sender": "desk", "timestamp": "2025-03-03T09:00:00Z"})


INPUTS = [  # N = 6: four trade lines, one chatter line, one undecodable record
    (b"fx-1", chat("buy 10m cable", "fx-1")),
    (b"eq-1", chat("sell 200 AAPL lmt 187.5", "eq-1")),
    (b"fx-2", chat("eurusd 1.0848/50", "fx-2")),
    (b"fx-1", chat("cxl my eurusd order", "fx-1")),
    (b"chat", chat("gm all", "chat")),
    (b"raw", b"buy 5m fiber (plain text, not JSON)"),
]


def scrape(settings: Settings) -> dict[tuple[str, tuple], float]:
    """GET /metrics parsed by prometheus_client: {(sample name, sorted labels): value}."""
    status, content_type, body = get(settings.web_port, METRICS_PATH)
    assert (status, content_type.split(";")[0]) == (200, "text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def total(samples: dict, name: str, **labels) -> float:
    return sum(value for (sample_name, sample_labels), value in samples.items()
               if sample_name == name and labels.items() <= dict(sample_labels).items())


@pytest.mark.integration
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_metrics_after_n_messages_count_n_and_probes_answer(guarantee, default_settings, broker, tmp_path):
    settings = fresh_stream_settings(default_settings, broker, tmp_path).model_copy(update={
        "processing_guarantee": guarantee, "transaction_batch_size": 3, "lag_refresh_s": 1.0, "web_host": "127.0.0.1"})
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: is_listening(settings.web_host, settings.web_port), worker, "the web server")
        assert get(settings.web_port, HEALTH_PATH)[0] == 200
        wait_until(lambda: get(settings.web_port, READY_PATH)[0] == 200, worker, "/ready after assignment")

        produce_raw(settings, INPUTS)
        n = len(INPUTS)
        samples = wait_until(lambda: (found := scrape(settings))
                             and total(found, "tradechat_messages_consumed_total") >= n and found,
                             worker, f"{n} messages counted")
        published = read_all(settings, output_topics(settings))

        assert total(samples, "tradechat_messages_consumed_total") == n
        assert total(samples, "tradechat_outputs_total") == n
        by_topic = {topic: total(samples, "tradechat_outputs_total", topic=topic) for topic in output_topics(settings)}
        assert by_topic == {topic: sum(r.topic == topic for r in published) for topic in output_topics(settings)}
        assert by_topic[settings.nontrade_topic] >= 1  # "gm all"
        assert total(samples, "tradechat_deadletters_total") == total(samples, "tradechat_deadletters_total",
                                                                      reason="not_json") == 1
        reviews = [LowConfidence.model_validate(r.json()) for r in published if r.topic == settings.review_topic]
        assert total(samples, "tradechat_review_reasons_total") == sum(len({x.code for x in r.reasons})
                                                                       for r in reviews)
        assert total(samples, "tradechat_batch_size_sum") == n
        assert total(samples, "tradechat_parse_seconds_count") == total(samples, "tradechat_batch_size_count") >= 1
        assert total(samples, "tradechat_parser_crashes_total") == 0
        [model] = [dict(labels) for (name, labels), value in samples.items() if name == "tradechat_model_info"]
        assert model["model"].endswith(".gguf") and model["prompt_version"], model

        def lag_settled():  # every input partition has a series, 0 once the offsets are committed
            lag = {labels: value for (name, labels), value in scrape(settings).items()
                   if name == "tradechat_consumer_lag"}
            return len(lag) == settings.topic_partitions and not any(lag.values())
        wait_until(lag_settled, worker, "consumer lag 0 on every input partition")
        assert (get(settings.web_port, HEALTH_PATH)[0], get(settings.web_port, READY_PATH)[0]) == (200, 200)
    finally:
        worker.stop()
