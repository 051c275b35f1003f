"""Print the fuzz campaigns' tally (inputs tried per outcome) at the end of the run."""

from __future__ import annotations

from typing import Any

from tests.fuzz.campaign import TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    terminalreporter.section("fuzz campaigns")
    for campaign, outcomes in sorted(TALLY.items()):
        total = sum(outcomes.values())
        detail = ", ".join(f"{name}={n}" for name, n in sorted(outcomes.items()))
        terminalreporter.write_line(f"{campaign}: {total} inputs ({detail})")
