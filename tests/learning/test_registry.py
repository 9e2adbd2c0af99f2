"""The model registry's rules: which transitions are allowed, what survives a failed write, concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import orjson
import pytest

from streamer.learning.registry import BOOTSTRAP_VERSION, ModelVersion, Registry, RegistryError, RegistryState
from streamer.parsing.model import BUNDLED_ADAPTER


def adapter(tmp_path: Path, name: str, content: bytes | None = None) -> Path:
    """A stand-in adapter file: the registry copies and hashes files, it does not load them."""
    path = tmp_path / "adapters" / name / "adapter.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if content is not None else b"GGUF" + name.encode() * 100)
    return path


@pytest.fixture
def registry(tmp_path) -> Registry:
    """v0 promoted (current); v1, v2, v3 candidates trained from it."""
    made = Registry.init(tmp_path / "registry", adapter(tmp_path, "v0"), by="lead")
    for version in ("v1", "v2", "v3"):
        made.add(version, adapter(tmp_path, version), parent="v0", by="trainer")
    return made


def test_init_makes_the_shipped_adapter_the_current_v0(tmp_path):
    registry = Registry.init(tmp_path / "registry", by="lead")
    current = registry.current()
    assert (current.version, current.status, current.promoted_by) == (BOOTSTRAP_VERSION, "promoted", "lead")
    assert (registry.path / "v0" / "adapter.json").read_bytes() == BUNDLED_ADAPTER.with_suffix(".json").read_bytes()
    assert current.base_model_sha256 == orjson.loads(BUNDLED_ADAPTER.with_suffix(".json").read_bytes())[
        "base_model_sha256"]
    assert registry.verify("v0") == registry.path / "v0" / "adapter.gguf"
    assert [(event.action, event.version) for event in registry.state().events] == [("add", "v0"), ("promote", "v0")]
    with pytest.raises(RegistryError, match="already exists"):
        Registry.init(registry.path, by="lead")


def test_init_is_all_or_nothing(tmp_path):
    registry = Registry(tmp_path / "registry")
    with pytest.raises(RegistryError, match="version v0: adapter file not found"):
        Registry.init(registry.path, tmp_path / "missing.gguf", by="lead")
    assert not registry.exists(), "a registry without a current version would stop every worker"
    assert Registry.init(registry.path, adapter(tmp_path, "v0"), by="lead").current().version == "v0"


def test_add_records_the_copy_and_its_lineage(registry, tmp_path):
    report = tmp_path / "gate.md"
    report.write_text("passed\n")
    entry = registry.add("v4", adapter(tmp_path, "v4"), parent="v1", data_manifests={"datasets/x.jsonl": "ab" * 32},
                         eval={"f1": 0.91}, report_files=[report], by="trainer")
    assert entry == registry.get("v4")
    assert (entry.adapter, entry.status, entry.parent, entry.report) == ("v4/adapter.gguf", "candidate", "v1",
                                                                         "v4/gate.md")
    assert (registry.path / "v4" / "adapter.gguf").read_bytes() == adapter(tmp_path, "v4").read_bytes()
    assert (registry.path / "v4" / "gate.md").read_text() == "passed\n"
    assert entry.code_version and entry.eval == {"f1": 0.91}
    assert registry.current().version == "v0", "adding does not change what workers run"


REFUSED_ADDS = [
    ("v1", "already in the registry"),
    ("../escape", "not a version name"),
    ("registry.json/x", "not a version name"),
]


@pytest.mark.parametrize("version, problem", REFUSED_ADDS)
def test_add_refuses(registry, tmp_path, version, problem):
    with pytest.raises(RegistryError, match=problem) as refused:
        registry.add(version, adapter(tmp_path, "new"))
    assert str(refused.value).startswith(f"model registry {registry.path}: version {version}: ")
    assert "\n" not in str(refused.value)


def test_add_refuses_an_unknown_parent_and_a_missing_file(registry, tmp_path):
    with pytest.raises(RegistryError, match="parent v9 is not in the registry"):
        registry.add("v4", adapter(tmp_path, "v4"), parent="v9")
    with pytest.raises(RegistryError, match="adapter file not found"):
        registry.add("v4", tmp_path / "nothing.gguf")
    assert registry.state().find("v4") is None and not (registry.path / "v4").exists()


# (steps before, operation, its version, expected error or None, current afterwards)
TRANSITIONS = [
    ([], "promote", "v1", None, "v1"),
    ([], "promote", "v0", "is current already", "v0"),
    ([], "promote", "v9", "not in the registry", "v0"),
    ([("reject", "v1")], "promote", "v1", "was rejected", "v0"),
    ([("promote", "v1"), ("promote", "v2")], "promote", "v1", "was promoted before", "v2"),
    ([], "reject", "v1", None, "v0"),
    ([], "reject", "v0", "is the current version", "v0"),
    ([("reject", "v1")], "reject", "v1", "is rejected already", "v0"),
    ([("promote", "v1")], "reject", "v0", None, "v1"),  # an old promoted version found bad: never rolled back to
    ([("promote", "v1")], "rollback", "v0", None, "v0"),
    ([("promote", "v1"), ("promote", "v2")], "rollback", "v1", None, "v1"),
    ([], "rollback", "v0", "is current already", "v0"),
    ([], "rollback", "v1", "is candidate", "v0"),
    ([("reject", "v1")], "rollback", "v1", "is rejected", "v0"),
    ([("promote", "v1"), ("reject", "v0")], "rollback", "v0", "is rejected", "v1"),
    ([], "rollback", "v9", "not in the registry", "v0"),
]


@pytest.mark.parametrize("before, action, version, problem, current", TRANSITIONS,
                         ids=[f"{'-'.join(a + v for a, v in t[0]) or 'fresh'}-{t[1]}-{t[2]}" for t in TRANSITIONS])
def test_transitions(registry, before, action, version, problem, current):
    for step, name in before:
        getattr(registry, step)(name, by="lead")
    events = len(registry.state().events)
    if problem is None:
        getattr(registry, action)(version, by="lead")
        assert registry.state().events[-1].model_dump(include={"action", "version", "by"}) == {
            "action": action, "version": version, "by": "lead"}
    else:
        with pytest.raises(RegistryError, match=problem) as refused:
            getattr(registry, action)(version, by="lead")
        assert str(refused.value).startswith(f"model registry {registry.path}: version {version}: ")
        assert len(registry.state().events) == events, "a refused operation records nothing"
    assert registry.state().current == current


def test_promote_stamps_who_when_and_the_gate_numbers(registry):
    registry.add("v4", registry.adapter_path("v1"), eval={"f1": 0.9})
    entry = registry.promote("v4", by="lead", eval={"floor": 0.85})
    assert (entry.status, entry.promoted_by, entry.eval) == ("promoted", "lead", {"f1": 0.9, "floor": 0.85})
    assert entry.promoted_at is not None and registry.get("v4") == entry


def test_reject_keeps_its_report(registry, tmp_path):
    report = tmp_path / "why.md"
    report.write_text("recall fell\n")
    entry = registry.reject("v1", by="gate", report=report)
    assert entry.report == "v1/why.md" and (registry.path / entry.report).read_text() == "recall fell\n"


@pytest.mark.parametrize("change, problem", [
    (lambda path: path.write_bytes(path.read_bytes() + b"x"), "adapter file changed"),
    (lambda path: path.unlink(), "adapter file missing"),
])
def test_verify_notices_a_changed_or_missing_file(registry, change, problem):
    change(registry.adapter_path("v1"))
    with pytest.raises(RegistryError, match=problem):
        registry.verify("v1")
    with pytest.raises(RegistryError, match=problem):
        registry.promote("v1", by="lead")
    assert registry.get("v1").status == "candidate"


def test_state_refuses_what_is_not_a_registry(tmp_path):
    empty = Registry(tmp_path / "nothing")
    with pytest.raises(RegistryError, match="no registry.json"):
        empty.state()
    with pytest.raises(RegistryError, match="no such directory"):
        empty.add("v1", adapter(tmp_path, "v1"))
    broken = Registry(tmp_path)
    broken.file.write_text('{"schema": 1, "current": null, "versions": [{"version": 3}]}')
    with pytest.raises(RegistryError, match="not a registry: versions.0") as refused:
        broken.state()
    assert "\n" not in str(refused.value)


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(registry, tmp_path, monkeypatch):
    before = registry.file.read_bytes()

    def no_replace(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError):
        registry.promote("v1", by="lead")
    monkeypatch.undo()
    assert registry.file.read_bytes() == before
    assert registry.current().version == "v0"
    assert not [p for p in registry.path.iterdir() if p.name.startswith(".")]


def test_the_file_is_valid_json_in_the_documented_shape(registry):
    raw = orjson.loads(registry.file.read_bytes())
    assert set(raw) == {"schema", "current", "versions", "events"} and raw["schema"] == 1
    assert all(set(version) == set(ModelVersion.model_fields) for version in raw["versions"])
    assert all(set(event) == {"at", "action", "version", "by"} for event in raw["events"])
    assert RegistryState.model_validate(raw).current == "v0"


def _add_many(path: str, prefix: str, count: int, adapter_file: str) -> None:
    registry = Registry(path)
    for index in range(count):
        registry.add(f"{prefix}{index}", adapter_file, by=prefix)


def test_concurrent_writers_lose_no_version(registry, tmp_path):
    source = adapter(tmp_path, "shared")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_add_many, args=(str(registry.path), prefix, 8, str(source)))
               for prefix in ("a", "b", "c")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert [writer.exitcode for writer in writers] == [0, 0, 0]
    names = {entry.version for entry in registry.state().versions}
    assert {f"{prefix}{index}" for prefix in "abc" for index in range(8)} <= names
    assert len(registry.state().versions) == 4 + 24
    assert sum(event.action == "add" for event in registry.state().events) == 4 + 24
