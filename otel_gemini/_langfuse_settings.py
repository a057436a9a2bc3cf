"""Where Langfuse is and how to sign in: read and checked here for every entry point.

``configure()``, the exporter, the gateway, ``serve``, ``demo``, ``health`` and ``costs``
all call :func:`resolve_langfuse` / :func:`langfuse_from_env`, so a setting is accepted or
refused the same way (and with the same message) wherever it is read. A malformed URL or
half-set keys fail at start instead of an exporter retrying forever while its spool fills.

Messages name the setting (the keyword when one was passed, else the variable used) and
never show a key: not the secret key, and not the public key either (it identifies the
project). A URL is shown, with any user information removed.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from otel_gemini._incidents import IncidentLog

ENV_BASE_URL = "LANGFUSE_BASE_URL"
ENV_HOST = "LANGFUSE_HOST"  # the Langfuse SDK's older name, accepted as an alias
ENV_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
ENV_SECRET_KEY = "LANGFUSE_SECRET_KEY"
LANGFUSE_VARIABLES = (ENV_PUBLIC_KEY, ENV_SECRET_KEY, ENV_BASE_URL, ENV_HOST)

DEFAULT_BASE_URL = "https://cloud.langfuse.com"
# The OTLP endpoint is <base URL>/api/public/otel/v1/traces: a base URL that already holds
# /api/public would double it, and every request would get a 404 retried forever.
_API_PATH = "/api/public"
# What a message shows of a URL: never user information (it may hold a password).
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)?[^/?#]*@")


_logger = logging.getLogger("otel_gemini.export")
_warned_cleartext = IncidentLog(_logger)


def warn_if_cleartext(base_url: str) -> bool:
    """Logs, once per URL and process, that a plain ``http://`` URL to a host that is not
    this machine sends the keys (HTTP Basic authentication on every request) and the spans
    unencrypted. Still allowed: Langfuse on a private network behind no TLS is a real setup,
    but it should be a visible choice. Returns whether it warned."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or _is_loopback(parts.hostname or ""):
        return False
    if not _warned_cleartext.first_time(base_url):
        return False
    _logger.warning(
        "otel-gemini: the Langfuse URL %s is plain http:// to another host: the Langfuse "
        "keys and the spans cross the network unencrypted; use https:// (docs/security.md)",
        base_url,  # checked: never holds user information
    )
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LangfuseConfigError(ValueError):
    """A missing or malformed Langfuse or exporter setting.

    The message is one line that names the setting (keyword or environment variable) and
    never shows a key's value; the CLI prints it as it is.
    """


@dataclass(frozen=True)
class LangfuseSettings:
    """Checked Langfuse settings: the base URL (no trailing slash) and the key pair."""

    base_url: str
    public_key: str = field(repr=False)
    secret_key: str = field(repr=False)


def langfuse_requested(
    environ: Mapping[str, str] | None = None,
    *,
    base_url: str | None = None,
    public_key: str | None = None,
    secret_key: str | None = None,
) -> bool:
    """Whether any Langfuse setting is given (keyword or non-empty variable): the point
    from which the rest must be complete and valid."""
    env = os.environ if environ is None else environ
    if any(value for value in (base_url, public_key, secret_key)):
        return True
    return any(env.get(name) for name in LANGFUSE_VARIABLES)


def langfuse_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    base_url: str | None = None,
    public_key: str | None = None,
    secret_key: str | None = None,
) -> LangfuseSettings | None:
    """``None`` when no Langfuse setting is given at all, else :func:`resolve_langfuse`
    (which raises :class:`LangfuseConfigError` for half-set keys or a bad URL)."""
    overrides = {"base_url": base_url, "public_key": public_key, "secret_key": secret_key}
    if not langfuse_requested(environ, **overrides):
        return None
    return resolve_langfuse(environ=environ, **overrides)


def resolve_langfuse(
    *,
    base_url: str | None = None,
    public_key: str | None = None,
    secret_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> LangfuseSettings:
    """Keyword arguments over ``environ`` (default ``os.environ``), checked.

    Base URL: ``base_url=``, else ``LANGFUSE_BASE_URL``, else ``LANGFUSE_HOST``, else
    ``https://cloud.langfuse.com``; see :func:`check_base_url`. Keys: both are required.
    Raises :class:`LangfuseConfigError`.
    """
    env = os.environ if environ is None else environ
    url, url_name = _text_setting(base_url, "base_url", (ENV_BASE_URL, ENV_HOST), env)
    checked_url = check_base_url(url if url is not None else DEFAULT_BASE_URL, url_name)
    public, public_name = _text_setting(public_key, "public_key", (ENV_PUBLIC_KEY,), env)
    secret, secret_name = _text_setting(secret_key, "secret_key", (ENV_SECRET_KEY,), env)
    if not public or not secret:
        raise LangfuseConfigError(_missing_keys(public, public_name, secret, secret_name))
    assert public is not None and secret is not None
    _check_key(public, public_name)
    _check_key(secret, secret_name)
    if public.startswith("sk-lf-") or secret.startswith("pk-lf-"):
        raise LangfuseConfigError(
            f"{public_name} and {secret_name} look swapped (the public key starts with "
            "'pk-lf-', the secret key with 'sk-lf-'; values not shown)"
        )
    return LangfuseSettings(base_url=checked_url, public_key=public, secret_key=secret)


def check_base_url(value: str, name: str = ENV_BASE_URL) -> str:
    """``value`` as a Langfuse base URL without its trailing slash, or
    :class:`LangfuseConfigError` naming ``name``.

    The rule: ``http`` or ``https``; a host; a port, if any, of 1 to 65535; no whitespace
    or control character anywhere; no user name or password, query or fragment. A path is
    allowed (Langfuse behind a reverse proxy under a prefix, ``https://example.com/langfuse``)
    unless it is or contains ``/api/public``: that part is Langfuse's own and is added here.
    """
    shown = _USERINFO.sub(lambda match: (match.group(1) or "") + "***@", value)
    if any(character.isspace() or not character.isprintable() for character in value):
        raise LangfuseConfigError(
            f"{name} must not contain spaces or control characters (got {shown!r})"
        )
    try:
        parts = urlsplit(value)
    except ValueError as error:  # e.g. an unclosed IPv6 bracket
        raise LangfuseConfigError(f"{name} is not a valid URL: {error} (got {shown!r})") from None
    try:
        port = parts.port
    except ValueError:  # not a number, or beyond 65535
        port = -1
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LangfuseConfigError(
            f"{name} must be an http:// or https:// URL such as {DEFAULT_BASE_URL} (got {shown!r})"
        )
    if parts.username is not None or parts.password is not None:
        raise LangfuseConfigError(
            f"{name} must not contain a user name or password (value not shown); "
            f"use {ENV_PUBLIC_KEY} and {ENV_SECRET_KEY}"
        )
    if not parts.hostname:
        raise LangfuseConfigError(f"{name} has no host name (got {shown!r})")
    if port is not None and not 1 <= port <= 65535:
        raise LangfuseConfigError(f"{name} has an invalid port; use 1 to 65535 (got {shown!r})")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise LangfuseConfigError(f"{name} must not have a query or fragment (got {shown!r})")
    path = parts.path.rstrip("/")
    at = (path + "/").find(_API_PATH + "/")
    if at != -1:
        base = f"{parts.scheme}://{parts.netloc}{path[:at]}"
        raise LangfuseConfigError(
            f"{name} must be Langfuse's base URL, without {_API_PATH} (got {shown!r}); use {base!r}"
        )
    return value.rstrip("/")


def _text_setting(
    value: str | None, keyword: str, variables: tuple[str, ...], environ: Mapping[str, str]
) -> tuple[str | None, str]:
    """The value and a name for messages: ``keyword=`` when given, else the variable used."""
    if value is not None:
        return value, f"{keyword}="
    for variable in variables:
        found = environ.get(variable)
        if found:
            return found, variable
    return None, " / ".join(variables)


def _missing_keys(
    public: str | None, public_name: str, secret: str | None, secret_name: str
) -> str:
    if public:
        return (
            f"Langfuse credentials incomplete: {public_name} is set; set {ENV_SECRET_KEY} "
            "too (or pass secret_key=)"
        )
    if secret:
        return (
            f"Langfuse credentials incomplete: {secret_name} is set; set {ENV_PUBLIC_KEY} "
            "too (or pass public_key=)"
        )
    return (
        f"Langfuse credentials missing: set {ENV_PUBLIC_KEY} and {ENV_SECRET_KEY} "
        "(or pass public_key= and secret_key=)"
    )


def _check_key(value: str, name: str) -> None:
    if any(character.isspace() or not character.isprintable() for character in value):
        raise LangfuseConfigError(
            f"{name} contains whitespace or control characters (value not shown); "
            "copy the key again without quotes or line breaks"
        )
