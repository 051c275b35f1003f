"""Stop and reload signals are acted on whichever thread the kernel hands them to."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from collector.lifecycle import RELOAD_SIGNAL, STOP_SIGNALS, SignalInbox, stop_answering_signals

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(30)
def test_a_signal_caught_by_another_thread_is_acted_on():
    # The kernel may deliver a process's signal to any thread that does not block it. Then only a
    # flag is set, which the main thread acts on when it runs Python code: a main thread waiting
    # for the signal without end never did (a collector that never answered SIGTERM).
    previous = {sig: signal.getsignal(sig) for sig in (*STOP_SIGNALS, RELOAD_SIGNAL)}
    inbox = SignalInbox()
    inbox.install()

    def raise_in_this_thread() -> None:
        time.sleep(0.3)  # the main thread is waiting by then
        signal.pthread_kill(threading.get_ident(), RELOAD_SIGNAL)

    helper = threading.Thread(target=raise_in_this_thread)
    try:
        helper.start()
        assert inbox.next() == RELOAD_SIGNAL
    finally:
        helper.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# A collector whose stop (say, its WAL drain) outlasts the test: once it runs, another thread
# raises SIGINT in itself, as the kernel may deliver a terminal's second Ctrl-C.
_SECOND_CTRL_C = """
import signal, threading
from collector.lifecycle import SignalInbox, stop_answering_signals

stopping = threading.Event()

class SlowToStop:
    def stop(self):
        stopping.set()
        threading.Event().wait(60)

def second_ctrl_c():
    stopping.wait()
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

inbox = SignalInbox()
inbox.install()
inbox.stopping = True  # as after the first Ctrl-C
threading.Thread(target=second_ctrl_c, daemon=True).start()
stop_answering_signals(SlowToStop())
"""


@pytest.mark.timeout(60)
def test_ctrl_c_during_a_long_stop_exits_at_once_whichever_thread_catches_it():
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _SECOND_CTRL_C], cwd=ROOT, capture_output=True, text=True, timeout=50)
    assert done.returncode == 130, done.stderr
    assert "Ctrl-C during the stop: exiting now" in done.stderr
    assert time.monotonic() - started < 30  # not after the stop's minute


def test_a_failed_stop_is_raised_in_the_main_thread():
    class FailsToStop:
        def stop(self) -> None:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        stop_answering_signals(FailsToStop())
