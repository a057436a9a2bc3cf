"""Asking Langfuse itself: is it up (no auth), and does it take our keys (auth)?"""

from __future__ import annotations

import time

import httpx

from otel_gemini._suppress import untraced
from otel_gemini.export import basic_auth
from otel_gemini.health._report import ProbeResult

HEALTH_PATH = "/api/public/health"
PROJECTS_PATH = "/api/public/projects"


class LangfuseProbe:
    """Two GETs: ``/api/public/health`` and ``/api/public/projects`` (Basic auth)."""

    def __init__(
        self, base_url: str, public_key: str, secret_key: str, *, timeout: float = 5.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._authorization = basic_auth(public_key, secret_key)
        self._timeout = timeout

    @untraced  # our GETs are no spans of the app's
    def check(self) -> ProbeResult:
        """Runs both checks (blocking, at most about twice ``timeout``); never raises."""
        reachable: bool | None = None
        version: str | None = None
        credentials: bool | None = None
        error: str | None = None
        with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
            try:
                response = client.get(self.base_url + HEALTH_PATH)
                reachable = response.status_code == 200
                if reachable:
                    body = response.json()
                    version = str(body.get("version")) if isinstance(body, dict) else None
                else:
                    error = f"{HEALTH_PATH}: HTTP {response.status_code}"
            except (httpx.HTTPError, ValueError) as failure:
                reachable = False
                error = f"{HEALTH_PATH}: {type(failure).__name__}: {failure}"
            if reachable:
                try:
                    response = client.get(
                        self.base_url + PROJECTS_PATH,
                        headers={"Authorization": self._authorization},
                    )
                    if response.status_code == 200:
                        credentials = True
                    elif response.status_code in (401, 403):
                        credentials = False
                        error = f"{PROJECTS_PATH}: HTTP {response.status_code}"
                except httpx.HTTPError as failure:
                    error = f"{PROJECTS_PATH}: {type(failure).__name__}: {failure}"
        return ProbeResult(time.time(), reachable, version, credentials, error)
