"""Optional dependencies: which install extra brings what, and the one-line error without it.

The core install (instrumentation, pricing, processing, export, health, ``configure()``)
needs none of these. Each optional package checks its extra where it is first used (a lazy
public name, a command's ``run``), so ``import otel_gemini`` and the core never import them.
"""

from __future__ import annotations

import importlib.util

# extra -> the top-level modules it installs that our code imports
_EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "server": ("starlette", "uvicorn"),
    "gateway": ("grpc", "google.rpc", "starlette", "uvicorn"),
    "testing": ("starlette", "uvicorn", "cryptography", "websockets"),
    "langfuse": ("langfuse",),
}


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed; the message is one
    line saying which extra to install."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs {module!r}, which is not installed: "
            f"pip install 'otel-gemini[{extra}]'",
            name=module,
        )
        self.extra = extra


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (``google`` of ``google.rpc``) is missing
        return False


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` when a module it installs is missing."""
    for module in _EXTRA_MODULES[extra]:
        if not _installed(module):
            raise MissingExtraError(feature, extra, module)
