"""`streamer parse` end to end, as a user runs it (real model)."""

import subprocess
import sys

import orjson
import pytest

from schemas import LowConfidence, Trade

pytestmark = pytest.mark.integration


def run(*args, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "streamer", *args], input=stdin, capture_output=True, timeout=300)


def _result(line: bytes):
    data = orjson.loads(line)
    return (Trade if data["kind"] == "trade" else LowConfidence).model_validate(data)


def test_parse_text_prints_one_contract_valid_json():
    proc = run("parse", "buy 10m eurusd 1w @ 1.0850")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    _result(lines[0])


def test_parse_file_reports_bad_lines_and_parses_the_rest(tmp_path):
    src = tmp_path / "chat.txt"
    src.write_bytes(b'buy 5 cable\n\n{"text": "sell 2 btc", "sender": "ann"}\n{broken json\n\xff\xfe\n'
                    b'{"sender": "no text"}\nhi all\n')
    proc = run("parse", "--file", str(src))
    assert proc.returncode == 1
    results = [_result(line) for line in proc.stdout.splitlines()]
    assert [r.message_id for r in results] and len(results) == 3
    err = proc.stderr.decode()
    for number in (4, 5, 6):
        assert f"chat.txt:{number}:" in err
    assert "3 bad lines" in err


def test_parse_stdin():
    proc = run("parse", "-", stdin=b"buy 1m cable\nsell 3 eth\n")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2


@pytest.mark.parametrize("args, needle", [
    (("parse", "--file", "/no/such/file"), "cannot read /no/such/file"),
    (("parse", "x", "--model", "/no/such/model.gguf"), "model file not found: /no/such/model.gguf"),
    (("parse",), "give either TEXT"),
])
def test_errors_are_one_line(args, needle):
    proc = run(*args)
    assert proc.returncode != 0
    err = proc.stderr.decode().strip()
    assert needle in err
    assert "Traceback" not in err


def test_corrupt_model_is_named(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    proc = run("parse", "x", "--model", str(bad))
    assert proc.returncode != 0
    err = proc.stderr.decode().strip()
    assert str(bad) in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_bad_limits_file_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "limits.toml"
    bad.write_text("[asset_class.fx_spot]\nmax_quantity = -1\n")
    proc = run("parse", "--limits", str(bad), "buy 10m eurusd")
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert err.count("\n") == 0 and "limits.toml, line 2" in err


def test_an_order_over_the_default_limit_goes_to_review():
    proc = run("parse", "buy 5 yards eurusd spot")
    assert proc.returncode == 0, proc.stderr
    result = _result(proc.stdout.splitlines()[0])
    assert result.kind == "low_confidence"
    assert any(r.code == "limit_exceeded" and "max_quantity" in r.detail for r in result.reasons), result.reasons
