"""The gateway's defaults, for ``GatewaySettings`` and the ``otel-gemini gateway`` options.

Kept apart from ``_gateway.py`` (which loads grpc and uvicorn) so the CLI can build its
parser from them without the ``[gateway]`` extra.
"""

from __future__ import annotations

from typing import Final

MiB: Final = 1024 * 1024
GRPC_PORT: Final = 4317
HTTP_PORT: Final = 4318
MAX_REQUEST_BYTES: Final = 16 * MiB
SPOOL_HIGH_WATER: Final = 0.9
GRPC_WORKERS: Final = 8
MAX_CONCURRENT_RPCS: Final = 64
# What decoding makes of a request's bytes at most, as measured (the protobuf message, then
# the SDK spans; OTLP/JSON's parsed document first): the in-flight budget reserves this
# much, so the budget bounds memory, not wire bytes (four 13.6 MB JSON requests took 880 MB).
DECODED_PER_BYTE: Final = 6
DECODED_PER_JSON_BYTE: Final = 12
INFLIGHT_HEADROOM: Final = 16 * MiB
"""The default in-flight budget's room beyond the largest request's reservation, for the
others in flight."""
DEFAULT_INFLIGHT_BYTES: Final = DECODED_PER_JSON_BYTE * MAX_REQUEST_BYTES + INFLIGHT_HEADROOM
"""The in-flight budget with the default largest request (208 MiB)."""
