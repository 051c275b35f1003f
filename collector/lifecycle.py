"""The collector as a process: serve until a stop signal, reload the configuration on SIGHUP.

SIGINT and SIGTERM stop it cleanly (in-flight requests finish, the WAL is drained). SIGHUP
reloads the configuration file, as the OpenTelemetry Collector does: a configuration that does
not load changes nothing (the error is logged and the collector goes on as it was); one that
does replaces the running collector by a new one (a restart inside the process: listeners close
for the moment it takes, and what the WAL holds is the new one's to write, unless it keeps its
data elsewhere). A Ctrl-C during a stop exits at once (code 130): everything acknowledged is in
the WAL already.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import resource
import signal
import threading
from collections.abc import Callable

from collector.config import Config, ConfigError
from collector.server import Server

log = logging.getLogger("spanfuse.server")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RELOAD_SIGNAL = signal.SIGHUP
_SIGNAL_POLL_SECONDS = 0.5


class SignalInbox:
    """Stop and reload signals, recorded by their handlers and acted on by the main thread."""

    def __init__(self) -> None:
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()  # put() is safe in a handler
        self.stopping = False

    def install(self) -> None:
        for sig in (*STOP_SIGNALS, RELOAD_SIGNAL):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, sig: int, _frame: object) -> None:
        if self.stopping and sig == signal.SIGINT:
            log.warning("Ctrl-C during the stop: exiting now; what is not yet in Parquet lands at the next start")
            os._exit(130)
        self._signals.put(sig)

    def next(self) -> int:
        """Block until a signal arrives; its number.

        Waits in rounds: the kernel may hand a process's signal to any of its threads, and one
        caught by another thread only runs its handler when the main thread next runs Python
        code, which a wait without end never does (a SIGTERM once went unanswered that way)."""
        while True:
            try:
                return self._signals.get(timeout=_SIGNAL_POLL_SECONDS)
            except queue.Empty:
                pass


def raise_open_files_limit() -> None:
    """Raise this process's soft limit on open files to its hard limit, as Go programs (the
    OpenTelemetry Collector among them) do at start. Every client connection holds a descriptor:
    under the usual soft limit of 1,024, about a thousand connected exporters exhaust it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
        return  # nothing to gain (an unlimited hard limit is not a value Linux takes for files)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError) as exc:
        log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)
        return
    log.debug("open files limit raised from %d to %d", soft, hard)


def serve_until_stopped(config: Config, reload_config: Callable[[], Config]) -> None:
    """Run a collector with ``config`` until SIGINT or SIGTERM; on SIGHUP, ``reload_config()``
    (raising :class:`ConfigError` for a configuration that must not run) and restart with it.

    Raises :class:`OSError` if the collector cannot start (a port in use), after stopping it."""
    inbox = SignalInbox()
    inbox.install()
    raise_open_files_limit()
    server = _started(Server(config))
    leave_out_of_cycle_collections()
    while True:
        sig = inbox.next()
        if sig == RELOAD_SIGNAL:
            gc.unfreeze()  # the collector being replaced must be collectable once it is gone
            server = _reloaded(server, reload_config)
            leave_out_of_cycle_collections()
            continue
        hint = " (Ctrl-C again exits at once)" if sig == signal.SIGINT else ""
        log.info("received %s%s", signal.Signals(sig).name, hint)
        inbox.stopping = True
        stop_answering_signals(server)
        return


def stop_answering_signals(server: Server) -> None:
    """``server.stop()``, run in a thread of its own while this thread waits for it in rounds.

    The stop joins threads and drains the WAL, for seconds. A Ctrl-C meanwhile must still exit at
    once, but the kernel may hand it to any thread, and then its handler only runs when the main
    thread next runs Python code: not while it sits in a join without end (see
    :meth:`SignalInbox.next`). Re-raises what the stop raised."""
    failures: list[BaseException] = []

    def stop() -> None:
        try:
            server.stop()
        except BaseException as exc:  # handed to the main thread, which raises it
            failures.append(exc)

    stopper = threading.Thread(target=stop, name="stop")
    stopper.start()
    while stopper.is_alive():
        stopper.join(_SIGNAL_POLL_SECONDS)
    if failures:
        raise failures[0]


def leave_out_of_cycle_collections() -> int:
    """Collect garbage, then leave every object that exists now out of the cycle collector's
    passes (``gc.freeze``); returns how many that is.

    Called once the collector runs: its own objects, the libraries' modules, protobuf's
    descriptors and the like (~100,000 objects) live as long as it does, yet every full pass
    walked them all. An OTLP/JSON body becomes ~150 container objects a span while it is
    parsed, enough to set off such passes over and over: leaving the rest out cut the
    collector's CPU for OTLP/JSON by about a third (bench/otlp_json_load.py).
    Objects are still freed when no longer referenced; only cycles among them are never
    collected, so a reload unfreezes first (the collector it replaces must go).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def start_error(exc: OSError) -> str:
    """Why a collector could not start, in one line: the reason and the path or endpoint."""
    if exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return exc.strerror or str(exc)


def _started(server: Server) -> Server:
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def _reloaded(server: Server, reload_config: Callable[[], Config]) -> Server:
    """The collector to run after a SIGHUP: a new one if the configuration loads and starts, else
    ``server`` as it was (or, if its listeners were already given up, started again as it was)."""
    log.info("received SIGHUP: reloading the configuration")
    try:
        config = reload_config()
    except ConfigError as exc:
        log.error("configuration not reloaded, going on as before: %s", exc)
        return server
    # What the WAL holds is for the new collector to write, which keeps the gap short; unless the
    # new one keeps its data elsewhere.
    server.stop(drain=config.data_dir != server.config.data_dir)
    try:
        new = _started(Server(config))
    except OSError as exc:
        log.error("configuration not reloaded, cannot start with it: %s; starting as before", start_error(exc))
        return _started(Server(server.config))
    log.info("configuration reloaded")
    return new
