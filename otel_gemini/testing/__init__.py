"""Fakes of Gemini and Langfuse servers for tests, ours and users'.

They need the ``testing`` extra (``pip install 'otel-gemini[testing]'``). Without it this
package still imports (pytest loads the plugin in it, ``otel_gemini.testing.pytest_plugin``,
in every environment with otel-gemini installed), and asking it for a fake raises
:class:`ImportError` saying which extra to install.
"""

from __future__ import annotations

from otel_gemini._extras import MissingExtraError, require_extra

try:
    require_extra("testing", "otel_gemini.testing")
    _missing: MissingExtraError | None = None
except MissingExtraError as error:
    _missing = error

if _missing is None:
    from otel_gemini.testing import fake_gemini
    from otel_gemini.testing.fake_gemini import *  # noqa: F403 (the names in its __all__)
    from otel_gemini.testing.fake_langfuse import (
        FakeLangfuse,
        MappedObservation,
        MappedTrace,
        ReceivedRequest,
        ReceivedSpan,
    )

    __all__ = [
        "FakeLangfuse",
        "MappedObservation",
        "MappedTrace",
        "ReceivedRequest",
        "ReceivedSpan",
    ]
    __all__ += fake_gemini.__all__
else:

    def __getattr__(name: str) -> object:
        if name.startswith("__"):  # module protocol lookups (``__path__``, ``__file__``...)
            raise AttributeError(name)
        assert _missing is not None
        raise _missing
