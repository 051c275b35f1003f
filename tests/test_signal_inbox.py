"""Stop and reload signals reach the main thread whichever thread the kernel hands them to."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from collector.lifecycle import RELOAD_SIGNAL, STOP_SIGNALS, SignalInbox


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
