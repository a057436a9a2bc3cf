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
