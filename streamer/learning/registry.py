"""The model registry: every adapter the learning loop produced, which one workers run, and who decided.

A directory, so any machine with the path (a shared volume) sees the same
models and the same decision:

    <registry>/registry.json   {"schema": 1, "current": "v3" | null, "versions": [...], "events": [...]}
    <registry>/registry.lock   flock'd while registry.json is changed
    <registry>/<version>/adapter.gguf (+ adapter.json, its card; + gate reports)

`registry.json` is only ever replaced whole (temp file + os.replace), so a
reader (a worker polling for a newly promoted version) never sees half of it
and needs no lock; every change reads, edits and writes it under an exclusive
flock, so two writers cannot lose each other's versions. A version's files are
copied in and hashed once; `verify` re-hashes before a worker loads one.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamer.parsing.model import sha256_file

__all__ = ["ModelVersion", "Registry", "RegistryError", "RegistryEvent", "RegistryState"]

SCHEMA = 1
REGISTRY_FILE = "registry.json"
LOCK_FILE = "registry.lock"
ADAPTER_FILE = "adapter.gguf"
BOOTSTRAP_VERSION = "v0"
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Status = Literal["candidate", "promoted", "rejected"]
Action = Literal["add", "promote", "reject", "rollback"]


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message is one line naming the registry and version."""

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message  # the message without the registry and version


class ModelVersion(BaseModel):
    """One adapter in the registry: its file and hash, what it was trained from, and what was decided about it."""

    model_config = ConfigDict(extra="forbid")

    version: str
    adapter: str = Field(description="The adapter file, relative to the registry directory: <version>/adapter.gguf.")
    adapter_sha256: str
    base_model_sha256: str | None = Field(default=None, description="The base model it was trained on, if known.")
    parent: str | None = Field(default=None, description="The version it was trained from.")
    data_manifests: dict[str, str] = Field(default_factory=dict, description="Training data: path -> sha256.")
    code_version: str = Field(description="`git describe --always --dirty`, else the package version.")
    eval: dict[str, Any] = Field(default_factory=dict, description="The gate's numbers, free-form.")
    status: Status = "candidate"
    created_at: datetime
    promoted_by: str | None = None
    promoted_at: datetime | None = None
    report: str | None = Field(default=None, description="A gate report kept beside the adapter, relative path.")


class RegistryEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    action: Action
    version: str
    by: str


class RegistryState(BaseModel):
    """The whole of registry.json."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_version: int = Field(default=SCHEMA, alias="schema")
    current: str | None = None
    versions: list[ModelVersion] = Field(default_factory=list)
    events: list[RegistryEvent] = Field(default_factory=list)

    def find(self, version: str) -> ModelVersion | None:
        return next((entry for entry in self.versions if entry.version == version), None)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def code_version() -> str:
    """What code built a version: `git describe --always --dirty` of the source tree, else the package version."""
    source = Path(__file__).resolve().parent
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=source, capture_output=True,
                                   text=True, timeout=10, check=False)
        if described.returncode == 0 and described.stdout.strip():
            return described.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return package_version("tradechat-streamer")
    except PackageNotFoundError:
        return "unknown"


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Registry:
    """A registry directory; every method reads registry.json afresh, so several processes can share one."""

    def __init__(self, path: Path | str):
        self.path = Path(path).expanduser()

    def __repr__(self) -> str:
        return f"Registry({str(self.path)!r})"

    # -- reading -------------------------------------------------------------------

    def _error(self, problem: str, version: str | None = None) -> RegistryError:
        where = f"model registry {self.path}" + (f": version {version}" if version else "")
        return RegistryError(f"{where}: {problem}", problem)

    @property
    def file(self) -> Path:
        return self.path / REGISTRY_FILE

    def exists(self) -> bool:
        return self.file.is_file()

    def state(self) -> RegistryState:
        """registry.json as it is now; `RegistryError` if there is none or it is not a registry."""
        try:
            raw = self.file.read_bytes()
        except FileNotFoundError:
            raise self._error(f"no {REGISTRY_FILE} (create one with `streamer learn init`)") from None
        except OSError as err:
            raise self._error(f"{REGISTRY_FILE} unreadable: {err.strerror or err}") from None
        try:
            state = RegistryState.model_validate(orjson.loads(raw))
        except orjson.JSONDecodeError as err:
            raise self._error(f"{REGISTRY_FILE} is not JSON: {err}") from None
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"])
            raise self._error(f"{REGISTRY_FILE} is not a registry: {field}: {first['msg']}") from None
        if state.schema_version != SCHEMA:
            raise self._error(f"{REGISTRY_FILE} has schema {state.schema_version}; this code reads {SCHEMA}")
        return state

    def current(self) -> ModelVersion | None:
        """The version workers should run, or None when nothing is promoted."""
        state = self.state()
        return state.find(state.current) if state.current else None

    def get(self, version: str) -> ModelVersion:
        found = self.state().find(version)
        if found is None:
            raise self._error("not in the registry", version)
        return found

    def adapter_path(self, version: str) -> Path:
        return self.path / self.get(version).adapter

    def verify(self, version: str) -> Path:
        """The version's adapter file, checked against its recorded sha256; `RegistryError` if missing or changed."""
        return self._verify(self.get(version))

    # -- changing --------------------------------------------------------------------

    @classmethod
    def init(cls, path: Path | str, adapter_file: Path | None = None, by: str | None = None) -> Registry:
        """A new registry whose first version, v0, is `adapter_file` (default: the shipped adapter), promoted.

        All or nothing: registry.json is written only once v0 is in and current.
        """
        registry = cls(path)
        if adapter_file is None:
            from streamer.parsing.model import BUNDLED_ADAPTER

            adapter_file = BUNDLED_ADAPTER
        registry.path.mkdir(parents=True, exist_ok=True)
        by = by or default_user()
        with registry._changing(new=True) as state:
            registry._add_to(state, BOOTSTRAP_VERSION, Path(adapter_file), by=by)
            registry._promote_in(state, BOOTSTRAP_VERSION, by)
        return registry

    def add(self, version: str, adapter_file: Path | str, parent: str | None = None,
            data_manifests: dict[str, str] | None = None, eval: dict[str, Any] | None = None,
            report_files: Sequence[Path | str] = (), base_model_sha256: str | None = None,
            by: str | None = None) -> ModelVersion:
        """Copy an adapter (and its adapter.json card, and `report_files`) in as a new candidate version.

        The first report file is recorded as the version's `report`. The base
        model's sha256 defaults to the one the card names. Refuses a version
        name already taken, an unknown parent, or a missing adapter file.
        """
        with self._changing() as state:
            return self._add_to(state, version, Path(adapter_file), parent, data_manifests, eval, report_files,
                                base_model_sha256, by or default_user())

    def promote(self, version: str, by: str, eval: dict[str, Any] | None = None) -> ModelVersion:
        """Make a candidate the current version (workers swap to it); its file is verified first."""
        with self._changing() as state:
            return self._promote_in(state, version, by, eval)

    def reject(self, version: str, by: str, report: Path | str | None = None) -> ModelVersion:
        """Mark a version never to be run (a candidate the gate failed, or an old promoted one found bad).

        The current version cannot be rejected: roll back to another first.
        `report` (a file) is copied beside the adapter and recorded.
        """
        report = Path(report).expanduser() if report is not None else None
        if report is not None and not report.is_file():
            raise self._error(f"report file not found: {report}", version)
        with self._changing() as state:
            entry = self._entry(state, version)
            if entry.status == "rejected":
                raise self._error("is rejected already", version)
            if state.current == version:
                raise self._error("is the current version; roll back to another before rejecting it", version)
            if report is not None:
                shutil.copyfile(report, self.path / version / report.name)
                entry.report = f"{version}/{report.name}"
            entry.status = "rejected"
            state.events.append(RegistryEvent(at=_now(), action="reject", version=version, by=by))
            return entry

    def rollback(self, version: str, by: str) -> ModelVersion:
        """Make an earlier promoted version current again (workers swap back to it); its file is verified first."""
        with self._changing() as state:
            entry = self._entry(state, version)
            if entry.status != "promoted":
                raise self._error(f"is {entry.status}; only a version promoted before can be rolled back to", version)
            if state.current == version:
                raise self._error("is current already", version)
            self._verify(entry)
            state.current = version
            state.events.append(RegistryEvent(at=_now(), action="rollback", version=version, by=by))
            return entry

    def _add_to(self, state: RegistryState, version: str, adapter_file: Path, parent: str | None = None,
                data_manifests: dict[str, str] | None = None, eval: dict[str, Any] | None = None,
                report_files: Sequence[Path | str] = (), base_model_sha256: str | None = None,
                by: str = "unknown") -> ModelVersion:
        if not _VERSION_NAME.fullmatch(version):
            raise self._error("not a version name (letters, digits, '.', '_', '-'; up to 64)", version)
        adapter_file = adapter_file.expanduser()
        if not adapter_file.is_file():
            raise self._error(f"adapter file not found: {adapter_file}", version)
        reports = [Path(report).expanduser() for report in report_files]
        for report in reports:
            if not report.is_file():
                raise self._error(f"report file not found: {report}", version)
        if state.find(version) is not None:
            raise self._error("already in the registry; give the new model another name", version)
        if parent is not None and state.find(parent) is None:
            raise self._error(f"parent {parent} is not in the registry", version)
        card = adapter_file.with_suffix(".json")
        if base_model_sha256 is None and card.is_file():
            try:
                base_model_sha256 = orjson.loads(card.read_bytes()).get("base_model_sha256")
            except (orjson.JSONDecodeError, AttributeError):
                pass
        folder = self.path / version
        if folder.exists():  # left by an add that died before writing registry.json: ours to replace
            shutil.rmtree(folder)
        staging = Path(tempfile.mkdtemp(dir=self.path, prefix=f".adding-{version}-"))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the version from workers running as another user
        try:
            shutil.copyfile(adapter_file, staging / ADAPTER_FILE)
            if card.is_file():
                shutil.copyfile(card, staging / "adapter.json")
            for report in reports:
                shutil.copyfile(report, staging / report.name)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        entry = ModelVersion(
            version=version, adapter=f"{version}/{ADAPTER_FILE}", adapter_sha256=sha256_file(folder / ADAPTER_FILE),
            base_model_sha256=base_model_sha256, parent=parent, data_manifests=dict(data_manifests or {}),
            code_version=code_version(), eval=dict(eval or {}), status="candidate", created_at=_now(),
            report=f"{version}/{reports[0].name}" if reports else None,
        )
        state.versions.append(entry)
        state.events.append(RegistryEvent(at=entry.created_at, action="add", version=version, by=by))
        return entry

    def _promote_in(self, state: RegistryState, version: str, by: str,
                    eval: dict[str, Any] | None = None) -> ModelVersion:
        entry = self._entry(state, version)
        if entry.status == "rejected":
            raise self._error("was rejected; add the adapter again under a new name to promote it", version)
        if entry.status == "promoted":
            raise self._error("is current already" if state.current == version
                              else f"was promoted before; `streamer learn rollback {version}` makes it current",
                              version)
        self._verify(entry)
        now = _now()
        entry.status, entry.promoted_by, entry.promoted_at = "promoted", by, now
        entry.eval.update(eval or {})
        state.current = version
        state.events.append(RegistryEvent(at=now, action="promote", version=version, by=by))
        return entry

    # -- internals -------------------------------------------------------------------

    def _entry(self, state: RegistryState, version: str) -> ModelVersion:
        entry = state.find(version)
        if entry is None:
            raise self._error("not in the registry", version)
        return entry

    def _verify(self, entry: ModelVersion) -> Path:
        path = self.path / entry.adapter
        try:
            actual = sha256_file(path)
        except FileNotFoundError:
            raise self._error(f"adapter file missing: {path}", entry.version) from None
        except OSError as err:
            raise self._error(f"adapter file unreadable: {path}: {err.strerror or err}", entry.version) from None
        if actual != entry.adapter_sha256:
            raise self._error(f"adapter file changed: {path} has sha256 {actual[:12]}, the registry recorded "
                              f"{entry.adapter_sha256[:12]}", entry.version)
        return path

    @contextmanager
    def _changing(self, new: bool = False) -> Iterator[RegistryState]:
        """registry.json read under the lock, changed by the caller, written back whole unless the caller raised.

        `new`: there must be no registry.json yet; the caller starts from an empty one.
        """
        with self._locked():
            if new and self.exists():
                raise self._error(f"already exists ({REGISTRY_FILE}); `streamer learn list` shows it")
            state = RegistryState() if new else self.state()
            yield state
            self._write(state)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive flock on registry.lock for one read-change-write of registry.json."""
        if not self.path.is_dir():
            raise self._error("no such directory (create one with `streamer learn init`)")
        with (self.path / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, state: RegistryState) -> None:
        """Replace registry.json whole: a reader sees the old file or the new one, never part of one."""
        body = orjson.dumps(state.model_dump(mode="json", by_alias=True), option=orjson.OPT_INDENT_2) + b"\n"
        descriptor, name = tempfile.mkstemp(dir=self.path, prefix=".registry-", suffix=".json")
        try:
            with os.fdopen(descriptor, "wb") as tmp:
                tmp.write(body)
                os.fchmod(tmp.fileno(), 0o644)  # readable by workers, like any other file; mkstemp makes 0600
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(name, self.file)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
