"""Override files: contract prices merged over the shipped table, and clear errors when wrong."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from otel_gemini.pricing import PriceTable, PriceTableError, Usage

D = Decimal
NOW = date(2026, 11, 1)
LIVE = "gemini-2.5-flash-native-audio-preview-09-2025"

PER_MINUTE_AUDIO = """
version = "contract-2026"

[[models]]
id = "gemini-2.5-flash-native-audio"
[[models.prices]]
source = "contract #42"
input_audio_per_minute = 0.40
"""


def _write(tmp_path: Path, text: str, name: str = "prices.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_per_minute_audio_uses_measured_seconds(tmp_path: Path) -> None:
    table = PriceTable.load(_write(tmp_path, PER_MINUTE_AUDIO))
    usage = Usage(
        input_tokens=3_000,
        audio_input_tokens=2_500,
        audio_input_seconds=90.0,
        output_tokens=100,
    )
    cost = table.cost(LIVE, usage, NOW)

    assert dict(cost.breakdown) == {
        "input": D("0.00025"),  # 500 text tokens x 0.50 / 1M
        "input_audio": D("0.6"),  # 90 s = 1.5 min x 0.40
        "output": D("0.0002"),  # 100 x 2.00 / 1M
    }
    assert cost.total == D("0.60045")
    assert cost.usage_details["input_audio"] == 2_500
    assert cost.source == "contract #42"
    assert cost.prices_version == "2026-11-24+contract-2026"


def test_per_minute_audio_without_seconds_uses_25_tokens_per_second_on_live(
    tmp_path: Path,
) -> None:
    table = PriceTable.load(_write(tmp_path, PER_MINUTE_AUDIO))
    cost = table.cost(LIVE, Usage(input_tokens=2_500, audio_input_tokens=2_500), NOW)

    # 2,500 tokens / 25 per second = 100 s; 100/60 min x $0.40, rounded to 1e-15 USD.
    assert cost.total == D("0.666666666666667")


def test_per_minute_audio_on_generate_content_uses_32_tokens_per_second(tmp_path: Path) -> None:
    override = """
[[models]]
id = "gemini-2.5-flash"
[[models.prices]]
input_audio_per_minute = 0.40
"""
    table = PriceTable.load(_write(tmp_path, override))
    usage = Usage(input_tokens=3_200, audio_input_tokens=3_200)

    assert table.cost("gemini-2.5-flash", usage, NOW).total == D("0.666666666666667")  # 100 s
    # On a Live session: 3,200 / 25 = 128 s.
    assert table.cost("gemini-2.5-flash", usage, NOW, live=True).total == D("0.853333333333333")


def test_live_flag_and_configured_rates(tmp_path: Path) -> None:
    override = """
[audio]
tokens_per_second = 40
live_tokens_per_second = 20

[[models]]
id = "gemini-2.5-flash"
[[models.prices]]
input_audio_per_minute = 0.60
output_audio_per_minute = 1.20
"""
    table = PriceTable.load(_write(tmp_path, override))
    usage = Usage(
        input_tokens=2_400, audio_input_tokens=2_400, output_tokens=1_200, audio_output_tokens=1_200
    )

    # generateContent: 2,400/40 = 60 s in ($0.60), 1,200/40 = 30 s out ($0.60).
    assert table.cost("gemini-2.5-flash", usage, NOW).total == D("1.2")
    # Live: 2,400/20 = 120 s in ($1.20), 1,200/20 = 60 s out ($1.20).
    assert table.cost("gemini-2.5-flash", usage, NOW, live=True).total == D("2.4")


def test_measured_seconds_are_billed_per_minute_even_without_audio_tokens(tmp_path: Path) -> None:
    table = PriceTable.load(_write(tmp_path, PER_MINUTE_AUDIO))
    cost = table.cost(LIVE, Usage(input_tokens=100, audio_input_seconds=30.0), NOW)

    assert dict(cost.breakdown) == {"input": D("0.00005"), "input_audio": D("0.2")}
    assert dict(cost.usage_details) == {"input": 100, "input_audio": 0}


def test_a_patch_without_date_changes_every_period(tmp_path: Path) -> None:
    override = """
[[models]]
id = "gemini-2.5-pro"
[[models.prices]]
output = 8
"""
    table = PriceTable.load(_write(tmp_path, override))
    usage = Usage(input_tokens=1_000, output_tokens=1_000, cache_read_input_tokens=1_000)

    # Each period keeps its own cache price; only the base output price changes.
    assert table.cost("gemini-2.5-pro", usage, date(2025, 6, 1)).total == D("0.00831")
    assert table.cost("gemini-2.5-pro", usage, NOW).total == D("0.008125")
    # Prompt-size tiers keep their prices unless the patch gives `tiers`.
    long_prompt = Usage(input_tokens=300_000, output_tokens=1_000)
    assert table.cost("gemini-2.5-pro", long_prompt, NOW).total == D("0.765")


def test_a_patch_can_replace_the_tiers(tmp_path: Path) -> None:
    override = """
[[models]]
id = "gemini-2.5-pro"
[[models.prices]]
output = 8
tiers = [{ above = 200000, input = 2, output = 12 }]
"""
    table = PriceTable.load(_write(tmp_path, override))
    long_prompt = Usage(input_tokens=300_000, output_tokens=1_000, cache_read_input_tokens=0)

    assert table.cost("gemini-2.5-pro", long_prompt, NOW).total == D("0.612")
    # The replaced tier gives no cache price: the base period's applies (0.125).
    cached = Usage(input_tokens=300_000, cache_read_input_tokens=100_000)
    assert table.cost("gemini-2.5-pro", cached, NOW).total == D("0.4125")


def test_a_dated_patch_applies_from_its_date(tmp_path: Path) -> None:
    override = """
[[models]]
id = "gemini-2.5-flash"
[[models.prices]]
from = 2026-06-01
source = "contract from June"
input = 0.20
"""
    table = PriceTable.load(_write(tmp_path, override))
    usage = Usage(input_tokens=1_000)

    assert table.cost("gemini-2.5-flash", usage, date(2026, 5, 31)).total == D("0.0003")
    june = table.cost("gemini-2.5-flash", usage, date(2026, 6, 1))
    assert june.total == D("0.0002")
    assert june.effective_from == date(2026, 6, 1)
    assert june.source == "contract from June"
    # The patched period keeps everything it did not change.
    cached = Usage(input_tokens=1_000, cache_read_input_tokens=1_000)
    assert table.cost("gemini-2.5-flash", cached, date(2026, 6, 1)).total == D("0.00003")


def test_an_override_adds_a_model_and_names(tmp_path: Path) -> None:
    override = """
version = "acme"

[[models]]
id = "acme-tuned-flash"
names = ["projects/acme/endpoints/123", "acme-flash"]
[[models.prices]]
from = 2026-01-01
source = "https://example.com/acme-prices"
input = 0.5
output = 1
tiers = [{ above = 100000, input = 1, output = 2 }]
service_tiers.batch = { multiplier = 0.25 }

[[models]]
id = "gemini-2.5-flash"
names = ["my-flash-alias"]
"""
    table = PriceTable.load(_write(tmp_path, override))
    usage = Usage(input_tokens=1_000, output_tokens=1_000)

    assert table.match("acme-flash") == "acme-tuned-flash"
    assert table.cost("acme-flash", usage, NOW).total == D("0.0015")
    assert table.cost("acme-flash", usage, NOW, service_tier="batch").total == D("0.000375")
    big = Usage(input_tokens=100_001)
    assert table.cost("acme-flash", big, NOW).total == D("0.100001")
    assert table.match("my-flash-alias") == "gemini-2.5-flash"
    assert table.version == "2026-11-24+acme"
    assert table.files == ("otel_gemini/pricing/data/gemini.toml", str(tmp_path / "prices.toml"))


def test_top_level_service_tier_rules_can_be_overridden(tmp_path: Path) -> None:
    table = PriceTable.load(_write(tmp_path, "[service_tiers.priority]\nmultiplier = 2\n"))
    usage = Usage(input_tokens=1_000, output_tokens=100)

    assert table.cost("gemini-2.5-flash", usage, NOW, service_tier="priority").total == D("0.0011")


def test_an_unversioned_override_is_identified_by_its_content(tmp_path: Path) -> None:
    first = PriceTable.load(_write(tmp_path, "[audio]\ntokens_per_second = 30\n", "a.toml"))
    second = PriceTable.load(_write(tmp_path, "[audio]\ntokens_per_second = 31\n", "b.toml"))

    assert first.version.startswith("2026-11-24+")
    assert len(first.version) == len("2026-11-24+") + 8
    assert first.version != second.version


def test_overrides_stack_on_a_given_base(tmp_path: Path) -> None:
    base = PriceTable.load(_write(tmp_path, 'version = "one"\n', "one.toml"))
    table = PriceTable.load(_write(tmp_path, 'version = "two"\n', "two.toml"), base=base)

    assert table.version == "2026-11-24+one+two"


def test_from_env_reads_otel_gemini_prices(tmp_path: Path) -> None:
    path = _write(tmp_path, PER_MINUTE_AUDIO)

    assert PriceTable.from_env({}).version == "2026-11-24"
    assert PriceTable.from_env({"OTEL_GEMINI_PRICES": str(path)}).version == (
        "2026-11-24+contract-2026"
    )
    with pytest.raises(PriceTableError) as raised:
        PriceTable.from_env({"OTEL_GEMINI_PRICES": str(tmp_path / "missing.toml")})
    assert raised.value.problems[0] == (
        f"OTEL_GEMINI_PRICES={tmp_path / 'missing.toml'}: the price override file is unusable"
    )
    assert "missing.toml: cannot read the file" in raised.value.problems[1]


# --- malformed files -------------------------------------------------------------------------

MALFORMED = [
    ("bad syntax", "[[models]\nid = 1", ["not valid TOML"]),
    (
        "negative price",
        '[[models]]\nid = "gemini-2.5-flash"\n[[models.prices]]\ninput = -0.1\n',
        ['models[0] (id "gemini-2.5-flash") prices[0]', "'input'", ">= 0"],
    ),
    (
        "unknown price key",
        '[[models]]\nid = "gemini-2.5-flash"\n[[models.prices]]\ninptu = 0.1\n',
        ['models[0] (id "gemini-2.5-flash") prices[0]', "'inptu': unknown key"],
    ),
    ("unknown top-level key", "currency = 'EUR'\n", ["'currency': unknown key"]),
    (
        "unknown model key",
        '[[models]]\nid = "gemini-2.5-flash"\nalias = ["x"]\n',
        ['models[0] (id "gemini-2.5-flash")', "'alias': unknown key"],
    ),
    (
        "unknown tier key",
        '[[models]]\nid = "gemini-2.5-pro"\n[[models.prices]]\n'
        "tiers = [{ above = 1000, outptu = 1 }]\n",
        ["prices[0].tiers[0]", "'outptu': unknown key"],
    ),
    (
        "unknown service-tier key",
        "[service_tiers.batch]\nmultipler = 0.5\n",
        [".service_tiers.batch", "'multipler': unknown key"],
    ),
    (
        "overlapping dates",
        '[[models]]\nid = "new-model"\n'
        "[[models.prices]]\nfrom = 2026-01-01\ninput = 1\n"
        "[[models.prices]]\nfrom = 2026-01-01\ninput = 2\n",
        ['models[0] (id "new-model") prices[1]', "overlapping dates", "2026-01-01"],
    ),
    (
        "two periods without a date",
        '[[models]]\nid = "new-model"\n'
        "[[models.prices]]\ninput = 1\n[[models.prices]]\ninput = 2\n",
        ["prices[1]", "overlapping dates", "no 'from' date"],
    ),
    (
        "a name already priced by another model",
        '[[models]]\nid = "my-model"\nnames = ["gemini-2.5-flash"]\n[[models.prices]]\ninput = 1\n',
        ['models[0] (id "my-model")', "'gemini-2.5-flash' is already priced by model"],
    ),
    (
        "invalid regular expression",
        '[[models]]\nid = "my-model"\npatterns = ["gemini-(("]\n[[models.prices]]\ninput = 1\n',
        ["'patterns'", "not a valid regular expression"],
    ),
    (
        "a pattern capturing another model's name",
        '[[models]]\nid = "greedy"\npatterns = ["^gemini-2"]\n[[models.prices]]\ninput = 1\n',
        ['models[0] (id "greedy")', "also matches", "gemini-2.0-flash"],
    ),
    (
        "price given as text",
        '[[models]]\nid = "gemini-2.5-flash"\n[[models.prices]]\ninput = "0.30"\n',
        ["'input': a price must be a number"],
    ),
    (
        "too many decimal places",
        '[[models]]\nid = "gemini-2.5-flash"\n[[models.prices]]\ninput = 0.0000000001\n',
        ["'input': at most 9 decimal places"],
    ),
    (
        "bad date",
        '[[models]]\nid = "gemini-2.5-flash"\n[[models.prices]]\nfrom = "June 2026"\n',
        ["'from': must be a date"],
    ),
    (
        "tiers out of order",
        '[[models]]\nid = "gemini-2.5-pro"\n[[models.prices]]\n'
        "tiers = [{ above = 200000, input = 3 }, { above = 100000, input = 2 }]\n",
        ["tiers[1]", "increasing 'above'"],
    ),
    (
        "a new model without prices",
        '[[models]]\nid = "nothing"\nnames = ["nothing"]\n',
        ['models[0] (id "nothing")', "at least one [[models.prices]]"],
    ),
    ("a newer format", "format = 2\n", ["'format'", "format 1"]),
    (
        "a period without any price",
        '[[models]]\nid = "new-model"\n[[models.prices]]\nsource = "x"\n',
        ["prices[0]", "at least one price"],
    ),
    (
        "standard takes no rule",
        "[service_tiers.standard]\nmultiplier = 2\n",
        ["'standard' is the base price"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [pytest.param(text, expected, id=name) for name, text, expected in MALFORMED],
)
def test_malformed_overrides_fail_with_file_entry_and_key(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = _write(tmp_path, text, "bad.toml")

    with pytest.raises(PriceTableError) as raised:
        PriceTable.load(path)

    message = str(raised.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        'spam = 1\n[[models]]\nid = "gemini-2.5-flash"\n[[models.prices]]\n'
        "input = -1\noutput = -2\n"
    )
    with pytest.raises(PriceTableError) as raised:
        PriceTable.load(_write(tmp_path, text))

    assert len(raised.value.problems) == 3
    assert str(raised.value).startswith("invalid price table (3 problems):")


PATH_NAMES = """
version = "paths"

[[models]]
id = "acme-tuned-flash"
names = ["projects/acme/locations/us-central1/endpoints/123", "tunedModels/support-bot-7"]
[[models.prices]]
source = "contract #7"
input = 0.50
output = 1.00
"""


@pytest.mark.parametrize(
    "model",
    [
        "projects/acme/locations/us-central1/endpoints/123",
        "  Projects/ACME/locations/us-central1/endpoints/123 ",  # as the table: trimmed, any case
        "projects/acme/locations/us-central1/endpoints/123@2",
        "tunedModels/support-bot-7",
    ],
)
def test_an_override_name_with_a_path_matches_as_written(tmp_path: Path, model: str) -> None:
    table = PriceTable.load(_write(tmp_path, PATH_NAMES))
    usage = Usage(input_tokens=1_000, output_tokens=1_000)

    assert table.match(model) == "acme-tuned-flash"
    assert table.cost(model, usage, NOW).total == D("0.0015")


def test_the_last_segment_of_a_path_name_alone_prices_nothing(tmp_path: Path) -> None:
    table = PriceTable.load(_write(tmp_path, PATH_NAMES))

    assert table.match("123") is None
    assert table.match("projects/other/locations/us-central1/endpoints/123") is None
    # Paths the table does not name are still reduced to the model, as before.
    assert table.match("publishers/google/models/gemini-2.5-flash@001") == "gemini-2.5-flash"


def test_an_endpoint_is_priced_at_its_own_price_not_its_base_models(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_gemini import CostSpanProcessor
    from otel_gemini import _attributes as attrs

    table = PriceTable.load(_write(tmp_path, PATH_NAMES))
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(SimpleSpanProcessor(memory), table))
    endpoint = "projects/acme/locations/us-central1/endpoints/123"
    with provider.get_tracer("t").start_as_current_span(
        f"generate_content {endpoint}",
        attributes={
            attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
            attrs.GEN_AI_REQUEST_MODEL: endpoint,
            # The response names the base model; the endpoint's contract price must win.
            attrs.GEN_AI_RESPONSE_MODEL: "gemini-2.5-flash-001",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 1_000,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 1_000,
        },
    ):
        pass

    (span,) = memory.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes[attrs.PRICES_MODEL] == "acme-tuned-flash"
    assert span.attributes[attrs.GEN_AI_USAGE_COST] == 0.0015
