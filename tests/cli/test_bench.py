"""`streamer bench`: the rows it prints exist and add up (speed itself is printed, never asserted)."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def rows(stdout: bytes) -> dict[str, str]:
    found = {}
    for line in stdout.decode().splitlines():
        key, _, value = line.rpartition("  ")
        found[key.strip()] = value.strip()
    return found


def test_bench_in_process_and_through_a_real_worker_on_the_embedded_broker():
    proc = subprocess.run([sys.executable, "-m", "streamer", "bench", "--n", "4", "--batch", "2", "--n-threads", "2",
                           "--kafka", "4"], capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    found = rows(proc.stdout)
    assert found["messages"] == "4" and found["batch_max_messages"] == "2"
    output = float(found["output_tokens_per_message"])
    sampled = float(found["sampled_tokens_per_message"])
    forced = float(found["forced_tokens_per_message (jump-forward, no logits)"])
    guessed = float(found["drafted_tokens_per_message (guessed, confirmed)"])
    assert forced > 0 and sampled + forced + guessed == pytest.approx(output, abs=0.16)
    assert float(found["throughput_msg_s"]) > 0 and float(found["ratio_to_prefill"]) > 0
    assert found["kafka_messages"] == "4"
    assert sum(int(part.split()[-1]) for part in found["kafka_outputs"].split(",")) == 4
    assert float(found["kafka_ratio_to_in_process"]) > 0
