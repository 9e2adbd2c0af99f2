"""A bad setting is one line naming the setting (and its variable), never a traceback or a secret."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streamer.cli import main


@pytest.mark.parametrize("env, line", [
    ({"STREAMER_TOPIC_PARTITIONS": "four"},
     "Error: bad setting: topic_partitions (STREAMER_TOPIC_PARTITIONS): Input should be a valid integer"),
    ({"STREAMER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
     "Error: bad setting: kafka_security_protocol SASL_SSL needs kafka_sasl_mechanism"),
    ({"STREAMER_KAFKA_SASL_PASSWORD": "hunter2-secret"},
     "Error: bad setting: kafka_sasl_password is set but kafka_security_protocol is PLAINTEXT"),
])
def test_a_bad_setting_is_one_line(env, line):
    result = CliRunner().invoke(main, ["consume", "trades.parsed"], env=env)
    assert result.exit_code == 1
    assert result.output.startswith(line) and result.output.count("\n") == 1
    assert "hunter2" not in result.output
