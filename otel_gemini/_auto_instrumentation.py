"""``opentelemetry-instrument python app.py``: the whole pipeline with no code change.

``opentelemetry-instrument`` loads a distro, a configurator (the SDK's builds the tracer
provider and the ``OTEL_TRACES_EXPORTER`` exporters), every ``opentelemetry_instrumentor``
(ours among them), then every ``opentelemetry_post_instrument`` entry point: ours is
:func:`post_instrument`. Hooking in there rather than shipping a distro or a configurator
works whichever distro and configurator the loader picked (it takes the first one found
unless ``OTEL_PYTHON_DISTRO`` / ``OTEL_PYTHON_CONFIGURATOR`` names one, and
``opentelemetry-distro`` registers both), and the provider exists by then.
"""

from __future__ import annotations

import logging
import os
from typing import Final

from otel_gemini._configure import Telemetry, configure_under_auto_instrumentation
from otel_gemini.aggregate import CostStoreError

_logger = logging.getLogger("otel_gemini")

ENV_AUTO_CONFIGURE: Final = "OTEL_GEMINI_AUTO_CONFIGURE"
_OFF: Final = frozenset(("false", "0", "no", "off"))


def post_instrument() -> None:
    """Configures pricing, Langfuse export and the cost store on the provider
    ``opentelemetry-instrument`` set up (``OTEL_GEMINI_AUTO_CONFIGURE=false``: not), and
    shuts them down at exit, before the provider, so the last spans are sent (the
    pipeline's own exit hook, registered when its loops start, after the provider's)."""
    if os.environ.get(ENV_AUTO_CONFIGURE, "").strip().lower() in _OFF:
        return
    try:
        # No atexit here: the pipeline shuts itself down at exit (_background.at_exit), once.
        _configure()
    except Exception as error:  # never stop the app from starting
        _logger.error(
            "otel-gemini: opentelemetry-instrument runs without pricing, Langfuse export and "
            "the cost store: %s",
            error,
        )
        return


def _configure() -> Telemetry | None:
    """The pipeline; when the cost store cannot be used (a directory another user could
    change, say), without it, logged in one line: Langfuse export goes on."""
    try:
        return configure_under_auto_instrumentation()
    except CostStoreError as error:
        _logger.error(
            "otel-gemini: opentelemetry-instrument runs without the cost store (and the "
            "budgets evaluated over it): %s",
            error,
        )
        return configure_under_auto_instrumentation(cost_store=False, budgets=False)
