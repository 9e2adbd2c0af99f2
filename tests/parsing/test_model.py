"""Loading the model safely on every CPU: the extra-buffer choice, from /proc/cpuinfo to llama.cpp."""

from __future__ import annotations

import pytest

from schemas import ChatMessage
from streamer.parsing.model import amx_flags, cpu_flags, extra_buffers_choice

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme avx2 avx512f avx512_vnni amx_bf16 avx512_fp16 amx_tile amx_int8 arch_capabilities
processor\t: 1
flags\t\t: fpu vme avx2 avx512f avx512_vnni amx_bf16 avx512_fp16 amx_tile amx_int8 arch_capabilities
"""
ICE_LAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics\n"


@pytest.mark.parametrize("cpuinfo, has, lacks", [
    (SAPPHIRE_RAPIDS, {"amx_tile", "amx_int8", "avx512_vnni"}, {"amx_fp16"}),
    (ICE_LAKE, {"avx2", "avx512f"}, {"amx_tile"}),
    (GRAVITON, {"asimd", "atomics"}, {"avx2"}),
    ("", set(), {"avx2"}),
])
def test_cpu_flags(cpuinfo, has, lacks):
    flags = cpu_flags(cpuinfo)
    assert has <= flags and not lacks & flags


@pytest.mark.parametrize("cpuinfo, expected", [
    (SAPPHIRE_RAPIDS, ["amx_tile", "amx_int8", "amx_bf16"]),
    (ICE_LAKE, []),
    (GRAVITON, []),
])
def test_amx_flags(tmp_path, cpuinfo, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert amx_flags(path) == expected


def test_amx_flags_without_cpuinfo_is_none(tmp_path):
    assert amx_flags(tmp_path / "missing") == []


@pytest.mark.parametrize("setting, amx, use", [
    ("auto", ["amx_tile", "amx_int8"], False),
    ("auto", [], True),
    ("on", ["amx_tile"], True),
    ("on", [], True),
    ("off", [], False),
    ("off", ["amx_tile"], False),
])
def test_extra_buffers_choice(setting, amx, use):
    chosen, why = extra_buffers_choice(setting, amx)
    assert chosen is use
    assert (setting in why) and (not amx or setting != "auto" or "amx_tile" in why)


@pytest.mark.integration
def test_the_model_reads_alike_with_extra_buffers_on_and_off(default_settings):
    """Weights off the extra (repack/AMX) buffers give the same greedy output and confidences."""
    from streamer.parsing import Parser

    results = {}
    for setting in ("on", "off"):
        parser = Parser(default_settings.model_copy(update={"cpu_extra_buffers": setting}))
        assert parser.model.extra_buffers.startswith(f"{setting} ")
        results[setting] = [parser.parse(ChatMessage(text=text, message_id="m")) for text in
                            ("buy 10m cable 1w @ 1.2710", "sell 200 AAPL lmt 187.5")]
    for on, off in zip(results["on"], results["off"]):
        assert on.model_dump(exclude={"provenance"}) == off.model_dump(exclude={"provenance"})


@pytest.mark.integration
def test_auto_loads_the_model_without_extra_buffers_on_a_cpu_reporting_amx(default_settings, tmp_path, monkeypatch):
    """What a Sapphire Rapids machine's /proc/cpuinfo makes `auto` do, through the real load."""
    from streamer.parsing import Parser, model

    fake = tmp_path / "cpuinfo"
    fake.write_text(SAPPHIRE_RAPIDS)
    monkeypatch.setattr(model, "CPUINFO", fake)
    parser = Parser(default_settings.model_copy(update={"cpu_extra_buffers": "auto"}))
    assert parser.model.extra_buffers.startswith("off (auto: the CPU reports amx_tile, amx_int8, amx_bf16")
    assert parser.parse(ChatMessage(text="buy 10m cable")).kind in ("trade", "low_confidence")
