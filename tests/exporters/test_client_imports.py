"""The client side works in an application that has none of the server's packages.

tests/test_packaging.py checks that ``import exporters`` survives without the server's third-party
dependencies. This goes further: Spanfuse's own server packages are blocked too, and the public API
is exercised end to end (processor, propagate_attributes, observe, an export to a local sink).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

BLOCKED = ["fastapi", "starlette", "uvicorn", "duckdb", "pyarrow", "grpc", "collector", "storage", "semconv"]


# Without isal too: exports are then gzipped by zlib (exporters/compression.py), which the sink undoes.
@pytest.mark.parametrize("blocked", [BLOCKED, [*BLOCKED, "isal"]], ids=["server-packages", "and-isal"])
def test_public_api_works_with_server_packages_unimportable(sink, blocked):
    code = textwrap.dedent(
        f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError("blocked: " + name)
                return None

        sys.meta_path.insert(0, Block())
        from opentelemetry.sdk.trace import TracerProvider
        from exporters import LangfuseSpanProcessor, observe, propagate_attributes

        provider = TracerProvider()
        processor = LangfuseSpanProcessor("pk", "sk", {sink.url!r}, flush_interval=60)
        provider.add_span_processor(processor)

        @observe(as_type="generation", tracer_provider=provider)
        def answer(question):
            return "42"

        with propagate_attributes(user_id="u"):
            answer("?")
        assert processor.force_flush(), processor.stats
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({blocked!r}))
        assert not loaded, loaded
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert [s.name for s in sink.spans()] == ["answer"]
    assert [received.headers.get("content-encoding") for received in sink.received] == ["gzip"]
