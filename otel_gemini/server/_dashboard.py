"""The dashboard page (``GET /`` and ``/dashboard``) and the files it loads.

The page is static HTML, CSS and JavaScript shipped in this package (``dashboard/``); it
draws with plotly.js, served from the installed ``plotly`` Python package (the ``[server]``
extra), so nothing comes from a CDN and nothing is built at install. Every figure on it is
fetched from the answers API beside it (``/api/observability/...``), with relative URLs, so
the page works wherever the app is mounted. Its assets are named by content (our files) or
by version (plotly.js) and cached for a year; the page itself is revalidated every time.

The page has no login of its own: it sits behind whatever guards the app (the bearer token
of ``serve --auth-token-file``, a reverse proxy). See docs/dashboard.md.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

ASSETS_PATH: Final = "/api/observability/assets"
DASHBOARD_PATHS: Final = ("/", "/dashboard")
_PAGE_DIR: Final = Path(__file__).parent / "dashboard"
_PLOTLY_SLOT: Final = "<!--plotly.js-->"
# Scripts only from this origin (no inline script, no eval, no CDN); plotly.js writes its
# own <style> rules and style attributes, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Asset names change with their content, so a browser may keep them for good.
_ASSET_HEADERS: Final = {
    "Cache-Control": "max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept-Encoding",
}


@dataclass
class _Asset:
    """One file the page loads, with its gzip encoding made on first request."""

    path: Path
    media_type: str
    _gzipped: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.path.read_bytes(), compresslevel=6, mtime=0)
            return self._gzipped


def plotly_js() -> tuple[Path, str] | None:
    """plotly.js inside the installed ``plotly`` package and its version, or ``None``
    when it is not installed (found without importing plotly, which is slow)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path, importlib.metadata.version("plotly")
    return None


class Dashboard:
    """The page and its assets: the page's HTML is made once, when the app is built."""

    def __init__(self) -> None:
        self.assets: dict[str, _Asset] = {}
        own = {
            suffix: self._add(_PAGE_DIR / f"dashboard.{suffix}", f"dashboard-{{}}.{suffix}", media)
            for suffix, media in (("css", "text/css"), ("js", "text/javascript"))
        }
        page = (_PAGE_DIR / "index.html").read_text(encoding="utf-8")
        page = page.replace("dashboard.css", f"{ASSETS_PATH[1:]}/{own['css']}")
        page = page.replace("dashboard.js", f"{ASSETS_PATH[1:]}/{own['js']}")
        plotly = plotly_js()
        tag = ""
        if plotly is not None:
            path, version = plotly
            name = f"plotly-{version}.min.js"
            self.assets[name] = _Asset(path, "text/javascript")
            tag = f'<script src="{ASSETS_PATH[1:]}/{name}" defer></script>'
        self.page = page.replace(_PLOTLY_SLOT, tag).encode("utf-8")

    def _add(self, path: Path, pattern: str, media_type: str) -> str:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        name = pattern.format(digest)
        self.assets[name] = _Asset(path, media_type)
        return name

    async def page_endpoint(self, request: Request) -> Response:
        return HTMLResponse(self.page, headers=_PAGE_HEADERS)

    async def asset_endpoint(self, request: Request) -> Response:
        asset = self.assets.get(request.path_params["name"])
        if asset is None:
            return JSONResponse(
                {"error": "not_found", "message": "no such dashboard asset"},
                status_code=404,
                headers={"Cache-Control": "no-store"},
            )
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = await run_in_threadpool(asset.gzipped)
            headers = {**_ASSET_HEADERS, "Content-Encoding": "gzip"}
        else:
            body = await run_in_threadpool(asset.path.read_bytes)
            headers = _ASSET_HEADERS
        return Response(body, media_type=asset.media_type, headers=headers)


def dashboard_routes() -> list[BaseRoute]:
    """``GET /``, ``GET /dashboard`` (the page) and ``GET /api/observability/assets/NAME``."""
    dashboard = Dashboard()
    routes: list[BaseRoute] = [
        Route(path, dashboard.page_endpoint, methods=["GET"], name=f"otel_gemini_dashboard{i}")
        for i, path in enumerate(DASHBOARD_PATHS)
    ]
    routes.append(
        Route(
            f"{ASSETS_PATH}/{{name}}",
            dashboard.asset_endpoint,
            methods=["GET"],
            name="otel_gemini_dashboard_assets",
        )
    )
    return routes
