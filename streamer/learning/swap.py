"""Live model swap: a worker follows the registry's current version without stopping.

`SwappableParser` stands where the workers' `ParserProcess` stands (the
runners call `parse_batch`; the worker reads `description` and calls `close`).
A daemon thread reads registry.json every `registry_poll_s`; when `current`
names a version other than the one running it verifies the file, checks the
base model, and starts a second `ParserProcess` on it beside the running one, so
parsing never waits on a model load. The next `parse_batch` call switches to
the new process (between batches, never inside one) and closes the old one.

A version that cannot be run (its file changed, another base model, a file
llama.cpp cannot load) is refused with one log line and never tried again by
this worker; the running version goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from schemas import ChatMessage, ParseResult, SourcePosition
from streamer.learning.registry import ModelVersion, Registry, RegistryError
from streamer.settings import Settings

log = logging.getLogger(__name__)


class SwapRefused(RuntimeError):
    """A registry version this worker cannot run; the message is the reason, in one line."""


def version_settings(settings: Settings, registry: Registry, entry: ModelVersion) -> Settings:
    """`settings` running `entry`: its adapter file from the registry, its name stamped into provenance."""
    return settings.model_copy(update={"adapter_path": str(registry.path.resolve() / entry.adapter),
                                       "model_version": entry.version})


class SwappableParser:
    """The registry's current version in a `ParserProcess`, replaced live when another version is promoted.

    One caller at a time for `parse_batch` / `parse`, like `ParserProcess`;
    the watcher thread only prepares the next process.
    """

    def __init__(self, settings: Settings, registry: Registry | None = None,
                 announce: Callable[[str], None] | None = None, start_process: Callable | None = None):
        from streamer.parsing.process import ParserProcess, ParserUnavailable

        if settings.registry_dir is None and registry is None:
            raise ValueError("SwappableParser needs settings.registry_dir or a registry")
        self.settings = settings
        self.registry = registry or Registry(settings.registry_dir)
        self._announce = announce or (lambda line: None)
        self._start_process = start_process or ParserProcess
        self._base_sha256: str | None = None
        self._lock = threading.Lock()
        self._staged: tuple[str, object] | None = None  # (version, process) ready for the next batch
        self._refused: set[str] = set()
        self._stop = threading.Event()
        entry = self.registry.current()
        if entry is None:
            raise SwapRefused(f"model registry {self.registry.path}: no current version (promote one)")
        self.version = entry.version
        try:
            self._active = self._start(entry)
        except (SwapRefused, ParserUnavailable) as err:  # the worker does not start
            raise type(err)(f"model registry {self.registry.path}: version {entry.version}: {err}") from None
        self._watcher = threading.Thread(target=self._watch, name="registry-watch", daemon=True)
        self._watcher.start()

    @property
    def description(self) -> str:
        return f"{self._active.description}, model version {self.version} from registry {self.registry.path}"

    @property
    def restarts(self) -> int:
        return self._active.restarts

    def parse_batch(self, messages: list[ChatMessage],
                    sources: list[SourcePosition | None] | None = None) -> list[ParseResult | Exception]:
        """`ParserProcess.parse_batch` on the running version, after switching to a staged one if there is one."""
        self._switch_if_staged()
        return self._active.parse_batch(messages, sources)

    def parse(self, message: ChatMessage, source: SourcePosition | None = None) -> ParseResult:
        self._switch_if_staged()
        return self._active.parse(message, source)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop watching, then close the running process and any staged one."""
        self._stop.set()
        if self._watcher.is_alive() and self._watcher is not threading.current_thread():
            self._watcher.join(timeout_s + self.settings.registry_poll_s)
        with self._lock:
            staged, self._staged = self._staged, None
        if staged is not None:
            staged[1].close(timeout_s)
        self._active.close(timeout_s)

    def __enter__(self) -> SwappableParser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- swapping ---------------------------------------------------------------------

    def _switch_if_staged(self) -> None:
        with self._lock:
            staged, self._staged = self._staged, None
            if staged is None:
                return
            old_version, old_process = self.version, self._active
            self.version, self._active = staged
        line = f"model swap: {old_version} -> {self.version}"
        log.info(line)
        self._announce(f"worker: {line}; parser: {self.description}")
        old_process.close()

    def _start(self, entry: ModelVersion):
        """A ready `ParserProcess` on `entry`; `SwapRefused` for a file or base model it cannot run."""
        try:
            self.registry.verify(entry.version)
        except RegistryError as err:
            raise SwapRefused(err.problem) from None
        self._check_base_model(entry)
        return self._start_process(version_settings(self.settings, self.registry, entry))

    def _check_base_model(self, entry: ModelVersion) -> None:
        """Refuse an adapter trained on another base model than the one this worker loads."""
        if entry.base_model_sha256 is None or self.settings.parser_factory:
            return
        if self._base_sha256 is None:
            from streamer.parsing.model import ModelLoadError, resolve_model_path, sha256_file

            try:
                self._base_sha256 = sha256_file(Path(resolve_model_path(self.settings)))
            except (ModelLoadError, OSError) as err:
                raise SwapRefused(f"base model unreadable: {err}") from None
        if entry.base_model_sha256 != self._base_sha256:
            raise SwapRefused(f"trained on base model {entry.base_model_sha256[:12]}, this worker runs "
                              f"{self._base_sha256[:12]}")

    def _watch(self) -> None:
        """Until `close`: every poll, stage the registry's current version when it is not the one running."""
        last_problem = None
        while not self._stop.wait(self.settings.registry_poll_s):
            try:
                self._poll()
                last_problem = None
            except Exception as err:  # an unreadable registry: keep the running version, say so once
                problem = str(err) or type(err).__name__
                if problem != last_problem:
                    log.warning("model registry not read: %s; keeping %s", problem, self.version)
                    last_problem = problem

    def _poll(self) -> None:
        wanted = self.registry.state().current
        with self._lock:
            running, staged_version = self.version, self._staged[0] if self._staged else None
        if wanted is None or wanted == (staged_version or running):
            return
        if wanted == running:  # rolled back before the staged one was used: drop it
            self._drop_staged()
            return
        if wanted in self._refused:
            return
        entry = self.registry.get(wanted)
        log.info("model swap: loading %s beside %s", wanted, running)
        try:
            process = self._start(entry)
        except Exception as err:  # SwapRefused, ParserUnavailable, or a process that would not spawn: never again
            self._refused.add(wanted)
            line = f"model swap refused: {wanted}: {err or type(err).__name__}; keeping {running}"
            log.warning(line)
            self._announce(f"worker: {line}")
            return
        with self._lock:  # close() sets _stop before it takes what is staged
            closing, previous = self._stop.is_set(), None
            if not closing:
                previous, self._staged = self._staged, (wanted, process)
        if closing:
            process.close()
            return
        if previous is not None:
            previous[1].close()
        self._announce(f"worker: model swap: {wanted} is ready; switching at the next batch")

    def _drop_staged(self) -> None:
        with self._lock:
            staged, self._staged = self._staged, None
        if staged is not None:
            staged[1].close()
