"""The embedded broker: where it may run, and that a taken port is an error, not a silent no-op."""

from __future__ import annotations

import pytest

from streamer.settings import Settings
from streamer.streaming.broker import BrokerStartError, local_address, start_broker


@pytest.mark.parametrize("url, address", [
    ("kafka://localhost:9092", ("localhost", 9092)),
    ("kafka://127.0.0.1:19092", ("127.0.0.1", 19092)),
    ("localhost:9093", ("localhost", 9093)),
    ("kafka://localhost", ("localhost", 9092)),
])
def test_local_address_of_a_localhost_url(url, address):
    assert local_address(Settings(broker_url=url)) == address


@pytest.mark.parametrize("url", ["kafka://kafka:9092", "kafka://10.0.0.5:9092", "kafka://localhost:9092;kafka://b:9092"])
def test_local_address_refuses_remote_or_several_brokers(url):
    with pytest.raises(ValueError, match="localhost only"):
        local_address(Settings(broker_url=url))


@pytest.mark.integration
def test_a_second_broker_on_a_taken_port_fails_loudly(broker):
    with pytest.raises(BrokerStartError, match=f"already listens at {broker.host}:{broker.port}"):
        start_broker(port=broker.port, host=broker.host)
