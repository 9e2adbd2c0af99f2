"""The workers' Prometheus metrics: one registry per worker, one function that records a processed batch.

Both runners (`faust_worker.py`, `transactional.py`) call `WorkerMetrics.record_batch`
once a batch's outputs are acknowledged (at-least-once) or its transaction is
committed (exactly-once), so what is counted is what was published, by one code
path. A batch the exactly-once worker aborts and reads again is counted once
more when it commits: `messages_consumed` counts records processed, re-reads included.

The registry is this object's own, not prometheus_client's global one, so two
workers (or tests) in one process do not share or clash over series.

`tradechat_parse_seconds` is observed once per batch: a batch's messages go
through llama.cpp together and finish together, so the batch's time is also
each of its messages' parse latency (divide by `tradechat_batch_size` for the
cost per message).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from streamer.settings import Settings
from streamer.streaming.pipeline import Output, Topics

PARSE_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class WorkerMetrics:
    """A worker's counters, histograms and gauges on a registry of its own; `exposition()` is GET /metrics."""

    def __init__(self, topics: Topics[str], model_version: str | None = None):
        self.topics = topics
        self.registry = CollectorRegistry()
        self.published: Tally[str] = Tally()  # outputs by topic role (parsed, review, ...), for the workers' logs
        self._parser_restarts_seen = 0
        on = {"registry": self.registry}
        self.messages_consumed = Counter("tradechat_messages_consumed", "Input records processed (re-reads "
                                         "after a crash or an aborted transaction included).", **on)
        self.outputs = Counter("tradechat_outputs", "Records published, by output topic and record kind "
                               "(trade, low_confidence, dead_letter).", ["topic", "kind"], **on)
        self.review_reasons = Counter("tradechat_review_reasons", "Results sent to review, once per distinct "
                                      "reason code each carries.", ["reason"], **on)
        self.deadletters = Counter("tradechat_deadletters", "Dead letters, by class (DeadLetter.error_class).",
                                   ["reason"], **on)
        self.parser_crashes = Counter("tradechat_parser_crashes", "Times the parser process died and was "
                                      "started again.", **on)
        self.parse_seconds = Histogram("tradechat_parse_seconds", "Wall time to decode and parse one batch "
                                       "(each of its messages waits this long).", buckets=PARSE_SECONDS_BUCKETS,
                                       **on)
        self.batch_size = Histogram("tradechat_batch_size", "Records per processed batch.",
                                    buckets=BATCH_SIZE_BUCKETS, **on)
        self.model = Info("tradechat_model", "The model the parser runs: registry version, file, adapter, "
                          "prompt version (empty until known).", **on)
        self.consumer_lag = Gauge("tradechat_consumer_lag", "Records on an assigned input partition after the "
                                  "group's committed offset (high watermark - committed).",
                                  ["topic", "partition"], **on)
        self._model_labels = {"version": model_version or "", "model": "", "adapter": "", "prompt_version": ""}
        self.model.info(self._model_labels)
        self._lag_series: set[tuple[str, str]] = set()

    @classmethod
    def for_worker(cls, settings: Settings, parser) -> WorkerMetrics:
        """A worker's metrics: its topics' names, the registry version its parser runs (when it runs one)."""
        return cls(Topics.from_settings(settings), getattr(parser, "version", None) or settings.model_version)

    def record_batch(self, results: Sequence[tuple[Output, bytes | None]], parse_s: float,
                     parser_restarts: int = 0) -> None:
        """Count one published batch: its `process_batch` results (result, key), the time it took, the parser's
        restart count now (`ParserProcess.restarts`; the counter adds what is new since the last batch)."""
        self.messages_consumed.inc(len(results))
        self.batch_size.observe(len(results))
        self.parse_seconds.observe(parse_s)
        for result, _ in results:
            role = Topics.role(result)
            self.published[role] += 1
            self.outputs.labels(topic=getattr(self.topics, role), kind=result.kind).inc()
            if result.kind == "low_confidence":
                for code in sorted({reason.code for reason in result.reasons}):
                    self.review_reasons.labels(reason=code).inc()
            elif result.kind == "dead_letter":
                self.deadletters.labels(reason=result.error_class).inc()
        self._count_parser_restarts(parser_restarts)
        self._note_model(result for result, _ in results)

    def set_consumer_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """The lag of each assigned partition; partitions no longer assigned (a rebalance) drop out."""
        series = {(topic, str(partition)) for topic, partition in lag}
        for gone in self._lag_series - series:
            self.consumer_lag.remove(*gone)
        for (topic, partition), behind in lag.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(behind)
        self._lag_series = series

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (serve it with `prometheus_client.CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)

    def _count_parser_restarts(self, restarts: int) -> None:
        # A live model swap replaces the parser process and its count starts again from 0: a count lower than
        # the last one seen is the new process's own.
        new = restarts - self._parser_restarts_seen if restarts >= self._parser_restarts_seen else restarts
        if new:
            self.parser_crashes.inc(new)
        self._parser_restarts_seen = restarts

    def _note_model(self, results: Iterable[Output]) -> None:
        provenance = next((r.provenance for r in results if getattr(r, "provenance", None) is not None), None)
        if provenance is None:
            return
        labels = {"version": provenance.model_version or self._model_labels["version"], "model": provenance.model,
                  "adapter": provenance.adapter or "", "prompt_version": provenance.prompt_version}
        if labels != self._model_labels:
            self._model_labels = labels
            self.model.info(labels)


def consumer_lag(high_watermarks: Mapping[tuple[str, int], int | None],
                 committed: Mapping[tuple[str, int], int | None],
                 log_starts: Mapping[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
    """Lag per (topic, partition): high watermark - committed offset, never below 0.

    A partition the group never committed is behind by all it holds (from its
    log start, default 0: workers read a new group from the earliest record). A
    partition whose high watermark is not known yet is left out. Clamped at 0
    because Tansu (the embedded broker) reports the high watermark as the last
    batch's base offset + 1, which undercounts a multi-record batch, so there a
    committed offset can run ahead of it; on Apache Kafka the lag is exact.
    """
    log_starts = log_starts or {}
    lag = {}
    for tp, high in high_watermarks.items():
        if high is None or high < 0:
            continue
        start = committed.get(tp)
        if start is None or start < 0:
            start = log_starts.get(tp, 0)
        lag[tp] = max(high - start, 0)
    return lag
