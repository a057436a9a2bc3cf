"""``otel-gemini prices``: the table, one model's dated prices, and checking override files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otel_gemini.cli import main

CONTRACT = """
version = "contract-7"

[[models]]
id = "gemini-2.5-flash-native-audio"
[[models.prices]]
from = 2026-10-01
source = "contract #7"
input_audio_per_minute = 0.40
"""


def test_lists_the_current_prices_of_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("price table 2026-11-24 (otel_gemini/pricing/data/gemini.toml)")
    assert "service tiers: batch x0.5, flex x0.5, priority x1.8" in out
    assert "audio tokens per second: 32 (Live 25)" in out
    assert "gemini-2.5-pro: gemini-2.5-pro, gemini-2.5-pro-preview-*\n" in out
    assert "  from 2025-11-01: input 1.25, cache_read 0.125, output 10" in out
    assert "    prompt > 200000 tokens: input 2.5, cache_read 0.25, output 15" in out
    assert "imagen-4: imagen-4.0-generate-001, imagen-4.0-generate-preview*" in out
    assert "per_image 0.04/image" in out
    # The introductory price in effect and the announced one after it.
    assert "gemini-3.8-flash: gemini-3.8-flash, /^gemini-3\\.8-flash-(preview|\\d)/" in out
    assert "  from 2027-01-01: input 1.5, cache_read 0.15, output 7.5" in out
    # Only the current period of a model whose price changed in the past.
    assert "cache_read 0.31," not in out


def test_shows_one_models_history_with_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "models/gemini-2.5-pro-002"]) == 0

    out = capsys.readouterr().out
    assert "gemini-2.5-pro: gemini-2.5-pro, gemini-2.5-pro-preview-*" in out
    assert "  from 2025-04-04: input 1.25, cache_read 0.31, output 10" in out
    assert "  from 2025-11-01: input 1.25, cache_read 0.125, output 10" in out
    assert out.count("source: https://ai.google.dev/gemini-api/docs/pricing#gemini-2.5-pro") == 2
    assert "note: Cache read cut to 10% of input." in out


def test_an_unknown_model_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "gpt-4o"]) == 1
    assert "no price for 'gpt-4o' in price table 2026-11-24" in capsys.readouterr().err


def test_check_accepts_a_valid_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "contract.toml"
    path.write_text(CONTRACT)

    assert main(["prices", "--check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: OK (price table version 2026-11-24+contract-7)\n"


def test_check_lists_every_problem_with_file_entry_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[models]]\nid = "gemini-2.5-flash"\n[[models.prices]]\ninput = -1\ninptu = 2\n'
    )

    assert main(["prices", "--check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{path}: invalid",
        f"  {path}: models[0] (id \"gemini-2.5-flash\") prices[0]: 'inptu': unknown key "
        "(expected one of: from, source, note, tiers, service_tiers, input, input_image, "
        "input_video, input_audio, cache_read, cache_read_audio, output, output_reasoning, "
        "output_image, output_audio, per_image, per_video_second, input_audio_per_minute, "
        "output_audio_per_minute, cache_storage)",
        f"  {path}: models[0] (id \"gemini-2.5-flash\") prices[0]: 'input': a price must be "
        "a finite number >= 0, not -1",
    ]


def test_shows_the_table_with_an_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "contract.toml"
    path.write_text(CONTRACT)

    assert main(["prices", "--prices", str(path), "gemini-live-2.5-flash-preview"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("price table 2026-11-24+contract-7;")
    assert "  from 2026-10-01: input 0.5, input_image 3, input_video 3, input_audio 3" in out
    assert "input_audio_per_minute 0.4/minute" in out
    assert "    source: contract #7" in out

    monkeypatch.setenv("OTEL_GEMINI_PRICES", str(path))
    assert main(["prices"]) == 0
    assert capsys.readouterr().out.startswith("price table 2026-11-24+contract-7 (")


def test_a_broken_override_in_the_environment_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_GEMINI_PRICES", str(tmp_path / "missing.toml"))

    assert main(["prices"]) == 2  # a configuration error: one line naming the variable
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otel-gemini prices: OTEL_GEMINI_PRICES=")
    assert "missing.toml: cannot read the file" in err


def test_the_console_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otel_gemini.cli", "prices", "gemini-2.5-flash"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "gemini-2.5-flash: gemini-2.5-flash, gemini-2.5-flash-preview-09-2025" in result.stdout


def test_a_table_id_shows_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    # The table's own headings use ids; an id that is no model name still finds its entry.
    assert main(["prices", "gemini-2.0-flash-live"]) == 0
    assert "gemini-2.0-flash-live (Live API): gemini-2.0-flash-live-001" in capsys.readouterr().out


def test_an_unknown_model_gets_the_nearest_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "gemini-2.5-flsh"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("no price for 'gemini-2.5-flsh' in price table 2026-11-24")
    assert "did you mean gemini-2.5-flash or " in err
    assert err.count("\n") == 1


def test_an_override_name_with_a_path_is_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        '[[models]]\nid = "acme-tuned-flash"\n'
        'names = ["projects/acme/locations/us-central1/endpoints/123"]\n'
        "[[models.prices]]\ninput = 0.5\noutput = 1\n",
        encoding="utf-8",
    )
    endpoint = "projects/acme/locations/us-central1/endpoints/123"
    assert main(["prices", "--prices", str(prices), endpoint]) == 0
    assert f"acme-tuned-flash: {endpoint}" in capsys.readouterr().out
