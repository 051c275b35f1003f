"""``prices MODEL`` subcommand, registered on a fresh parser as collector/cli.py will do."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from collector.pricing.cli import add_prices_command


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="spanfuse")
    add_prices_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["prices", *argv])
    return args.run(args)


def test_known_model_prints_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("models/gemini-2.5-pro", "--provider", "gcp.vertex_ai") == 0
    out = capsys.readouterr().out
    assert "matched model: gemini-2.5-pro" in out
    assert "provider: google" in out
    assert "source: genai-prices " in out
    assert "200,000" in out and "1.25" in out and "2.5" in out and "cache_read" in out


def test_bedrock_and_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("o3", "--date", "2025-05-01") == 0
    assert "40" in capsys.readouterr().out  # o3 output price before the 2025-06-10 cut


def test_unknown_model_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("no-such-model-xyz", "--provider", "openai") == 1
    assert "unknown model 'no-such-model-xyz'" in capsys.readouterr().out


def test_config_adds_custom_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "otel-config.yaml"
    config.write_text(
        """
receivers: {otlp: {}}
pricing:
  - name: in-house-llm
    match: "inhouse-.*"
    unit: per_token
    prices: {input: 0.000001, output: 0.000002, web_search_queries: 0.01}
""",
        encoding="utf-8",
    )
    assert run("inhouse-7b", "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert "matched model: in-house-llm" in out and "source: custom" in out
    assert "web_search_queries" in out and "10000" in out  # 0.01 per query shown per 1M units


def test_bad_config_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("pricing:\n  - name: x\n    match: '('\n    unit: per_token\n    prices: {input: 1}\n")
    assert run("gpt-4o", "--config", str(config)) == 2
    assert "not a valid Python regex" in capsys.readouterr().err
    assert run("gpt-4o", "--config", str(tmp_path / "missing.yaml")) == 2
