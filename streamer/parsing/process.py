"""The workers' parser in a supervised child process: a native crash costs one message, not the worker.

llama.cpp is native code: a SIGILL, SIGSEGV or abort inside it kills the
process that called it, and with at-least-once delivery the message in flight is
read again after every restart, so one bad message (or one bad CPU path) would
crash-loop a worker forever. Here the model lives in a child process and the
worker hands it a batch of messages at a time over a pipe:

- the child dies on a batch -> a fresh child is started (the model loaded
  again, ~1 s for the bundled one) and each message of the batch is tried alone;
- the child dies on one message -> a fresh child, and the same message again;
- the message was in flight at `max_parse_crashes` deaths -> `ParserCrashed`
  in its place, which the pipeline publishes as a `processing_crash` dead letter
  (original bytes, the signal in the detail); the worker goes on;
- the child cannot load the model, or dies while loading it ->
  `ParserUnavailable`: nothing can be parsed, so the worker stops with that line
  (and its unacknowledged input is read again by the next worker).

The child ignores SIGINT and SIGTERM (the worker decides when it stops, after
the message in flight) and is killed when the worker dies.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection, wait

from schemas import ChatMessage, ParseResult, SourcePosition
from streamer.processes import describe_exit, die_with_parent, exit_hint
from streamer.settings import Settings

log = logging.getLogger(__name__)


class ParserCrashed(RuntimeError):
    """The parser process died on the same message `attempts` times; the message names the signal."""

    def __init__(self, cause: str, attempts: int):
        super().__init__(f"the parser process {cause} on each of {attempts} attempts at this message")
        self.cause = cause
        self.attempts = attempts


class ParserUnavailable(RuntimeError):
    """The parser process could not load the model, or died doing so: no message can be parsed."""


class _ChildDied(Exception):
    def __init__(self, status: int | None):
        self.status = status


def build_parser(settings: Settings):
    """The parser `settings.parser_factory` names ('module:function'), or the llama.cpp `Parser`."""
    if not settings.parser_factory:
        from streamer.parsing.parser import Parser

        return Parser(settings)
    module, _, name = settings.parser_factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"parser_factory {settings.parser_factory!r} cannot be imported: {err}") from None
    return factory(settings)


def _serve(connection: Connection, settings: Settings, parent_pid: int) -> None:
    """The child: build the parser, say 'ready', then answer (message, source) requests until told to stop."""
    die_with_parent(parent_pid, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        parser = build_parser(settings)
    except Exception as err:  # told to the parent, which stops with this line
        connection.send(("failed", str(err) or type(err).__name__))
        return
    describe = getattr(parser, "describe", None)
    connection.send(("ready", describe() if describe else type(parser).__name__))
    while True:
        try:
            request = connection.recv()
        except EOFError:  # the worker is gone
            return
        if request is None:
            return
        messages, sources = request
        try:
            reply = ("ok", parse_batch(parser, messages, sources))
        except Exception as err:  # a bug outside any one message: raised to the caller
            reply = ("error", err)
        try:
            connection.send(reply)
        except Exception:  # an exception that does not pickle
            connection.send(("ok", [_picklable(item) for item in reply[1]]) if reply[0] == "ok"
                            else ("error", _picklable(reply[1])))


def _picklable(item):
    import pickle

    if not isinstance(item, BaseException):
        return item
    try:
        pickle.dumps(item)
        return item
    except Exception:
        return RuntimeError(f"{type(item).__name__}: {item}")


def parse_batch(parser, messages: list[ChatMessage], sources: list[SourcePosition | None]) -> list:
    """`parser.parse_batch` where it has one, else `parse` one by one; each failure in its message's place."""
    batch = getattr(parser, "parse_batch", None)
    if batch is not None:
        return batch(messages, sources)
    results = []
    for message, source in zip(messages, sources):
        try:
            results.append(parser.parse(message, source))
        except Exception as err:  # the parser's own verdict (ParseError) or bug: the pipeline dead-letters it
            results.append(err)
    return results


class ParserProcess:
    """`Parser.parse` run in a child process that is restarted when it dies; the same `parse` interface.

    One caller at a time (the worker's parser thread or loop), like `Parser`.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.restarts = 0
        self.description = ""  # the child's parser, in one line
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads and a loop
        self._process = None
        self._connection: Connection | None = None
        self._start()

    def parse(self, message: ChatMessage, source: SourcePosition | None = None) -> ParseResult:
        """The child's result; raises what the parser raised, `ParserCrashed` or `ParserUnavailable`."""
        [result] = self._parse_alone(message, source)
        if isinstance(result, BaseException):
            raise result
        return result

    def parse_batch(self, messages: list[ChatMessage],
                    sources: list[SourcePosition | None] | None = None) -> list[ParseResult | Exception]:
        """One result per message, in order, a failure (`ParseError`, `ParserCrashed`, ...) in its message's place.

        When the child dies on a batch, each message of it is tried again alone,
        so a poison message is found and dead-lettered without its neighbours.
        Raises only `ParserUnavailable`.
        """
        sources = sources or [None] * len(messages)
        if len(messages) == 1:
            return self._parse_alone(messages[0], sources[0])
        try:
            self._connection.send((messages, sources))
            status, value = self._receive()
        except (_ChildDied, OSError) as died:
            code = died.status if isinstance(died, _ChildDied) else self._reap()
            log.error("parser process %s on a batch of %d messages; trying each alone", describe_exit(code),
                      len(messages))
            self.restarts += 1
            self._start()
            return [self._parse_alone(m, s)[0] for m, s in zip(messages, sources)]
        if status == "ok":
            return value
        raise value

    def _parse_alone(self, message: ChatMessage, source: SourcePosition | None) -> list:
        """[result or failure] for one message, restarting the child each time it dies, up to the limit."""
        limit = self.settings.max_parse_crashes
        for attempt in range(1, limit + 1):
            try:
                self._connection.send(([message], [source]))
                status, value = self._receive()
            except (_ChildDied, OSError) as died:
                code = died.status if isinstance(died, _ChildDied) else self._reap()
                cause = describe_exit(code)
                where = f"{source.topic}:{source.partition}@{source.offset}" if source else "-"
                log.error("parser process %s on message %s at %s (attempt %d of %d); starting a new one",
                          cause, message.message_id, where, attempt, limit)
                self.restarts += 1
                self._start()
                continue
            if status == "ok":
                return value
            raise value
        return [ParserCrashed(cause, limit)]

    def close(self, timeout_s: float = 10.0) -> None:
        """Let the child finish and exit; kill it if it does not."""
        if self._process is None:
            return
        try:
            self._connection.send(None)
        except OSError:
            pass
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()
        self._process = None

    def __enter__(self) -> ParserProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        """A fresh child with the model loaded; raises `ParserUnavailable` when it cannot be had."""
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=_serve, args=(theirs, self.settings, os.getpid()), name="parser",
                                        daemon=True)
        process.start()
        theirs.close()  # so that the child's death reads as EOF here
        self._process, self._connection = process, ours
        try:
            status, detail = self._receive()
        except _ChildDied as died:
            hint = exit_hint(died.status)
            raise ParserUnavailable(f"the parser process {describe_exit(died.status)} while loading the model"
                                    + (f"; {hint}" if hint else "")) from None
        if status != "ready":
            self._reap()
            raise ParserUnavailable(detail)
        self.description = f"{detail} (parser process {process.pid})"

    def _receive(self):
        """The child's next reply; `_ChildDied` if it died without one."""
        ready = wait([self._connection, self._process.sentinel])
        if self._connection in ready:
            try:
                return self._connection.recv()
            except EOFError:
                pass
        raise _ChildDied(self._reap())

    def _reap(self) -> int | None:
        self._process.join(10)
        self._connection.close()
        return self._process.exitcode
