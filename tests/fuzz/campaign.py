"""What every fuzz campaign shares: its size (``SPANFUSE_FUZZ_EXAMPLES``) and its tally.

The default run keeps each property small so ``make test`` stays fast. A longer campaign sets
``SPANFUSE_FUZZ_EXAMPLES`` (examples per property, per schemathesis operation and mode, and
per random-mutation loop; it also widens the dialect sweep and the REST filter values)::

    SPANFUSE_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/fuzz -q

(``-m slow`` selects only the heavier, slow-marked campaigns). The tally (inputs tried per
campaign and outcome) is printed at the end of the pytest run.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 200


def examples(default: int = DEFAULT_EXAMPLES) -> int:
    """Examples per property: ``SPANFUSE_FUZZ_EXAMPLES`` when set, else ``default``."""
    value = os.environ.get("SPANFUSE_FUZZ_EXAMPLES")
    return int(value) if value else default


def long_campaign() -> bool:
    """Whether a longer campaign was asked for (``SPANFUSE_FUZZ_EXAMPLES`` set)."""
    return bool(os.environ.get("SPANFUSE_FUZZ_EXAMPLES"))


def fuzz_settings(default: int = DEFAULT_EXAMPLES) -> settings:
    """Hypothesis settings for one property: bounded examples, no deadline (the machine is loaded)."""
    return settings(
        max_examples=examples(default),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
        database=None,  # every run explores afresh; failures are pinned as example tests instead
    )


# campaign -> outcome -> count; printed by tests/fuzz/conftest.py.
TALLY: defaultdict[str, Counter[str]] = defaultdict(Counter)


def count(campaign: str, outcome: str, n: int = 1) -> None:
    TALLY[campaign][outcome] += n
