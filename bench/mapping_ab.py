"""Two checkouts' compiled mappers, timed in turns: the speed ratio of a change, despite a noisy machine.

This machine's speed swings by ±40 % from minute to minute, so medians measured minutes apart
compare the minutes, not the code. Here each checkout runs in its own process, both load the
same bench requests (``bench/mapping.py``), and they map them one pass each in turns; the ratio
of each pair of passes is taken, and their median printed.

Each checkout needs its compiled mapper built (``spanfuse build-mapper`` run in it).

    .venv/bin/python bench/mapping_ab.py OTHER_CHECKOUT [--pairs 30] [--requests 8]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _child(root: Path, corpus: Path) -> None:
    """Load ``root``'s mapper, say ready, then map the corpus once per line read; print each time."""
    sys.path.insert(0, str(root))
    from collector import native
    from collector.wire import pipeline_request_type
    from semconv.mapping import map_traces_request

    if native.active_build() is None:
        sys.exit(f"{root}: no compiled mapper matches its sources (run `spanfuse build-mapper` there)")
    request_type = pipeline_request_type()
    payloads = [bytes.fromhex(p) for p in json.loads(corpus.read_text())]
    for payload in payloads:  # warm the memos
        map_traces_request(request_type.FromString(payload))
    print("ready", flush=True)
    for _ in sys.stdin:
        started = time.perf_counter()
        for payload in payloads:
            map_traces_request(request_type.FromString(payload))
        print(time.perf_counter() - started, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("other", nargs="?", help="the checkout to compare this one with")
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--requests", type=int, default=8, help="512-span requests per pass")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child), Path(args.corpus))
        return
    if not args.other:
        parser.error("give the other checkout")
    sys.path.insert(0, str(HERE))
    from bench.mapping import build_request

    random.seed(7)
    trees = [Path(args.other).resolve(), HERE]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.json"
        corpus.write_text(json.dumps([build_request(512).hex() for _ in range(args.requests)]))
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--child", str(tree), "--corpus", str(corpus)],
                cwd=tree,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for tree in trees
        ]
        for proc in procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                sys.exit("a checkout could not load its compiled mapper")
        times: list[list[float]] = [[], []]
        for pair in range(args.pairs):
            for k in (0, 1) if pair % 2 == 0 else (1, 0):  # alternate who goes first
                assert procs[k].stdin is not None and procs[k].stdout is not None
                procs[k].stdin.write("go\n")
                procs[k].stdin.flush()
                times[k].append(float(procs[k].stdout.readline()))
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()
    spans = 512 * args.requests
    for tree, passes in zip(trees, times, strict=True):
        print(f"{tree}: median {spans / statistics.median(passes):,.0f}, best {spans / min(passes):,.0f} spans/s")
    ratios = [other / mine for other, mine in zip(times[0], times[1], strict=True)]
    print(
        f"this checkout / the other, per pair of passes: median {statistics.median(ratios):.3f}"
        f" (min {min(ratios):.3f}, max {max(ratios):.3f}, {args.pairs} pairs of {spans} spans)"
    )


if __name__ == "__main__":
    main()
