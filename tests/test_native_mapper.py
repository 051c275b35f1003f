"""The compiled mapper (collector/native.py): loaded only while it matches the sources, and
mapping exactly as the plain Python it is built from.

``make test`` builds it first and sets ``SPANFUSE_REQUIRE_NATIVE=1``, so these tests fail there
if it was not built or not loaded; a plain ``pytest`` without a build skips what needs one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

import semconv.mapping
from collector import native
from tests.fuzz.test_fuzz_otlp import DIALECT_CONTEXTS, EXTREME_VALUES, dialect_sweep

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = os.environ.get("SPANFUSE_REQUIRE_NATIVE") == "1"
BUILD = native.active_build()

needs_build = pytest.mark.skipif(
    BUILD is None and not REQUIRED, reason="no compiled mapper matches the sources (`spanfuse build-mapper`)"
)


def _python(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter (the import system decides compiled or plain at start)."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


_WHICH = (
    "import collector, semconv.mapping as m; from collector import native; print(native.active_build(), m.__file__)"
)


@needs_build
def test_the_compiled_mapper_is_loaded():
    assert BUILD is not None, "make test builds the compiled mapper: it should have been loaded"
    assert Path(semconv.mapping.__file__).is_relative_to(BUILD)
    assert semconv.mapping.__file__.endswith(native.EXT_SUFFIX)
    assert (BUILD / "COMPLETE").read_text().strip() == BUILD.name == native.source_digest()


def test_spanfuse_native_0_maps_with_the_plain_source():
    build, path = _python(_WHICH, SPANFUSE_NATIVE="0").split()
    assert build == "None"
    assert path == str(ROOT / "semconv" / "mapping.py")


@needs_build
def test_a_build_of_other_sources_or_an_unfinished_one_is_never_loaded(tmp_path):
    assert BUILD is not None
    digest = native.source_digest()
    stale = tmp_path / ("0" * len(digest))  # a complete build, of sources that differ from these
    unfinished = tmp_path / digest  # the right sources, but cut short before COMPLETE was written
    shutil.copytree(BUILD, stale)
    shutil.copytree(BUILD, unfinished)
    (unfinished / "COMPLETE").unlink()
    assert _python(_WHICH, SPANFUSE_NATIVE_DIR=str(tmp_path)).split() == ["None", str(ROOT / "semconv" / "mapping.py")]
    (unfinished / "COMPLETE").write_text(digest)  # once finished, it is the one
    build, path = _python(_WHICH, SPANFUSE_NATIVE_DIR=str(tmp_path)).split()
    assert (build, Path(path).parent) == (str(unfinished), unfinished / "semconv")


def test_the_pipeline_reads_encoded_span_attributes_only_when_compiled():
    # Reading KeyValue bytes pays off compiled; on the plain source protobuf's objects are faster.
    which = "import collector.wire as w; print(w.pipeline_request_type() is w.TraceRequest)"
    assert _python(which, SPANFUSE_NATIVE="0").strip() == "False"
    if BUILD is not None:
        assert _python(which).strip() == "True"


def test_an_edited_source_changes_the_digest(tmp_path):
    package = tmp_path / "semconv"
    shutil.copytree(ROOT / "semconv", package, ignore=shutil.ignore_patterns("__pycache__"))
    before = native.source_digest(package)
    assert before == native.source_digest()  # the digest depends on content, not on location
    mapping = package / "mapping.py"
    mapping.write_text(mapping.read_text() + "\n# edited\n")
    assert native.source_digest(package) != before


# ---------------------------------------------------------------- same rows, compiled or plain


def _bench_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_mapping", ROOT / "bench" / "mapping.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _bench_requests() -> list[bytes]:
    bench = _bench_module()
    return [bench.build_request(512) for _ in range(4)]


def test_the_mapping_bench_measures_this_build():
    bench = _bench_module()
    figures = bench.measure([bench.build_request(512)], 1)
    assert figures["build"] == (str(native.active_build()) if native.active_build() else None)
    assert all(figures[key][0] > 0 for key in ("map", "priced", "walk"))


def _sweep_requests() -> list[bytes]:
    """Every key a dialect reads, with every extreme value, alone and under one dialect's markers
    (each dialect in turn)."""

    def keep(key_number: int, variant: int) -> bool:
        return variant in (0, 1 + key_number % (len(DIALECT_CONTEXTS) - 1))

    return [request.SerializeToString() for _, request in dialect_sweep(16, keep)]


_LOG_EVENTS = (
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "gen_ai.client.inference.operation.details",
)


def _log_requests() -> list[bytes]:
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    for event in _LOG_EVENTS:
        for index, value in enumerate(EXTREME_VALUES):
            record = LogRecord(time_unix_nano=1_764_000_000_000_000_000 + index, body=value, event_name=event)
            record.attributes.append(KeyValue(key="gen_ai.system", value=EXTREME_VALUES[-index - 1]))
            scope_logs.log_records.append(record)
    return [request.SerializeToString()]


@needs_build
def test_compiled_and_plain_mappers_give_the_same_rows(tmp_path):
    corpus = [
        *(("traces", r.hex()) for r in _bench_requests()),
        *(("traces", r.hex()) for r in _sweep_requests()),
        *(("logs", r.hex()) for r in _log_requests()),
    ]
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps(corpus))
    command = f"from tests.map_corpus import main; main({str(path)!r})"
    compiled = _python(command).splitlines()
    plain = _python(command, SPANFUSE_NATIVE="0").splitlines()
    assert compiled[0] == f"build: {BUILD}" and plain[0] == "build: None"
    assert len(compiled) == len(plain) == len(corpus) + 1
    for index, (mine, theirs) in enumerate(zip(compiled[1:], plain[1:], strict=True)):
        assert mine == theirs, f"request {index} ({corpus[index][0]}) maps differently when compiled"


@pytest.mark.slow
@needs_build
def test_the_mapping_tests_pass_on_the_plain_source():
    # Everything else in this run maps with the compiled build; the plain source is what runs
    # without a C compiler and what a developer edits, so its own tests run here too.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/semconv",
            "tests/test_mapping_generic.py",
        ],
        cwd=ROOT,
        env={**os.environ, "SPANFUSE_NATIVE": "0", "SPANFUSE_REQUIRE_NATIVE": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
