"""Who may talk to the ports ``serve`` and ``gateway`` open: bearer tokens, TLS, mTLS.

One home for the options both commands take (``--auth-token-file``, ``--tls-cert``,
``--tls-key``, ``--tls-client-ca``, ``--allow-unauthenticated``), their validation (one line
naming the option, exit 2), the listeners' connection limits (:class:`ConnectionLimits`,
enforced by ``_http_limits``), and the pieces that enforce the rest: :class:`TokenFile` (re-read
when the file changes, compared in constant time), :class:`BearerAuth` (ASGI middleware,
also for apps that mount ``observability_app()`` or ``Telemetry.asgi_app()``) and
:class:`GrpcBearerAuth` (a gRPC server interceptor). See docs/security.md.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

_logger = logging.getLogger("otel_gemini.security")

TOKEN_FILE_ENV: Final = "OTEL_GEMINI_AUTH_TOKEN_FILE"
TLS_CERT_ENV: Final = "OTEL_GEMINI_TLS_CERT"
TLS_KEY_ENV: Final = "OTEL_GEMINI_TLS_KEY"
LOOPBACK_HOST: Final = "127.0.0.1"
"""Where ``serve`` and ``gateway`` listen by default: reachable from this host only."""
# A listener's connection limits (ConnectionLimits below, GatewaySettings and the options of
# both commands take their defaults from here: _http_limits, which enforces them, loads
# uvicorn; the CLI and the settings must not).
DEFAULT_HEADER_TIMEOUT: Final = 10.0
DEFAULT_BODY_TIMEOUT: Final = 10.0
DEFAULT_IDLE_TIMEOUT: Final = 5.0
DEFAULT_MAX_CONNECTIONS: Final = 1024
DEFAULT_MAX_REQUESTS: Final = 256
DEFAULT_RETRY_AFTER: Final = 1.0
LIVENESS_PATH: Final = "/api/observability/livez"
"""Answers ``200 {"status": "alive"}`` without a token: for load balancers and probes."""


@dataclass(frozen=True)
class ConnectionLimits:
    """Timeouts (seconds) and caps of one HTTP listener."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    """A request head (request line and headers) must arrive whole within this."""
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    """A request body may stall (no bytes while the server waits for them) this long."""
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """A keep-alive connection without a request is closed after this."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Open connections; past it, the one idle the longest is closed."""
    max_requests: int = DEFAULT_MAX_REQUESTS
    """Requests in progress at once; past it, 503 with ``Retry-After``."""
    retry_after: float = DEFAULT_RETRY_AFTER
    """Seconds suggested in ``Retry-After`` when full."""

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"connection setting {name} must be positive")
        if self.retry_after < 0:  # 0 is fine: the header says at least 1 s
            raise ValueError("connection setting retry_after must not be negative")
        for name in ("max_connections", "max_requests"):
            if getattr(self, name) < 1:
                raise ValueError(f"connection setting {name} must be at least 1")


class TokenFileError(ValueError):
    """The token file cannot be used (missing, unreadable, no token in it)."""


def _read_tokens(path: Path) -> tuple[bytes, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise TokenFileError(f"{path}: cannot read it: {reason}") from None
    tokens = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            tokens.append(line.encode("utf-8"))
    if not tokens:
        raise TokenFileError(f"{path}: no token in it (one token a line; # starts a comment)")
    return tuple(tokens)


class TokenFile:
    """The tokens of a file, one a line (blank lines and ``#`` comments skipped).

    The file is stat'ed on each check (cheap) and re-read when its mtime, size or inode
    changed, so a rotated token works at once without a restart. If the new content cannot
    be used (empty, unreadable, mid-write), the previous tokens stay in force and a warning
    is logged: a botched rotation must not open the door, nor lock every sender out.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Raises :class:`TokenFileError` if the file cannot be used now."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._tokens = _read_tokens(self.path)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def tokens(self) -> tuple[bytes, ...]:
        """The tokens in force (re-read if the file changed since the last call)."""
        signature = self._stat()
        with self._lock:
            if signature != self._signature and signature is not None:
                try:
                    self._tokens = _read_tokens(self.path)
                except TokenFileError as error:
                    _logger.warning("otel-gemini: keeping the previous tokens: %s", error)
                self._signature = signature
            return self._tokens

    def accepts(self, token: bytes | str | None) -> bool:
        """Whether ``token`` is one of the file's, compared in constant time."""
        if not token:
            return False
        given = token.encode("utf-8") if isinstance(token, str) else token
        # Every token is compared (no early exit), each in constant time.
        matched = False
        for known in self.tokens():
            matched |= hmac.compare_digest(given, known)
        return matched

    def accepts_header(self, value: bytes | str | None) -> bool:
        """Whether an ``Authorization`` header value is ``Bearer <one of the tokens>``."""
        if not value:
            return False
        raw = value.encode("latin-1") if isinstance(value, str) else value
        scheme, _, token = raw.strip().partition(b" ")
        return scheme.lower() == b"bearer" and self.accepts(token.strip())


# --- ASGI ----------------------------------------------------------------------------------------

_UNAUTHORIZED_BODY: Final = (
    b'{"error":"unauthorized","message":"send Authorization: Bearer <token>"}'
)


class BearerAuth:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>`` with a
    token of ``tokens``, except ``GET`` of ``open_paths`` (by default the liveness path);
    others get ``401`` with ``WWW-Authenticate: Bearer``. WebSocket connections without a
    token are closed (code 1008). Lifespan events pass through.

        app = BearerAuth(telemetry.asgi_app(), TokenFile("/run/secrets/otel-gemini-tokens"))
    """

    def __init__(
        self,
        app: Callable[..., Any],
        tokens: TokenFile,
        *,
        open_paths: Iterable[str] = (LIVENESS_PATH,),
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if (
            kind == "http"
            and scope.get("method") in ("GET", "HEAD")
            and scope.get("path") in self.open_paths
        ):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value
                break
        if self.tokens.accepts_header(authorization):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED_BODY)).encode()),
                    (b"www-authenticate", b'Bearer realm="otel-gemini"'),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED_BODY})


def liveness_endpoint() -> Any:
    """A Starlette route answering ``GET`` :data:`LIVENESS_PATH` with the process's liveness
    only (no details): what a probe may see without a token."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def alive(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"}, headers={"Cache-Control": "no-store"})

    return Route(LIVENESS_PATH, alive, methods=["GET"], name="otel_gemini_livez")


# --- gRPC ----------------------------------------------------------------------------------------


def grpc_bearer_auth(tokens: TokenFile) -> Any:
    """A ``grpc.ServerInterceptor`` refusing calls without ``authorization: Bearer <token>``
    metadata with ``UNAUTHENTICATED``."""
    import grpc  # type: ignore[import-untyped]

    def refuse(request: Any, context: Any) -> Any:
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "send authorization: Bearer <token> metadata (a token of the gateway's "
            "--auth-token-file)",
        )

    refusal = grpc.unary_unary_rpc_method_handler(refuse)

    class GrpcBearerAuth(grpc.ServerInterceptor):  # type: ignore[misc]
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            for key, value in details.invocation_metadata or ():
                if key == "authorization" and tokens.accepts_header(value):
                    return continuation(details)
            return refusal

    return GrpcBearerAuth()


# --- options -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListenSecurity:
    """The security options of one command, validated (see :func:`from_arguments`)."""

    tokens: TokenFile | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    allow_unauthenticated: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn.Config keyword arguments for TLS (and client certificates)."""
        if self.tls_cert is None:
            return {}
        options: dict[str, Any] = {
            "ssl_certfile": str(self.tls_cert),
            "ssl_keyfile": str(self.tls_key),
        }
        if self.tls_client_ca is not None:
            options["ssl_ca_certs"] = str(self.tls_client_ca)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return options

    def grpc_credentials(self) -> Any:
        """``grpc.ServerCredentials`` for TLS (client certificates required with a client CA);
        ``None`` without TLS."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        import grpc

        root = self.tls_client_ca.read_bytes() if self.tls_client_ca is not None else None
        return grpc.ssl_server_credentials(
            [(self.tls_key.read_bytes(), self.tls_cert.read_bytes())],
            root_certificates=root,
            require_client_auth=root is not None,
        )

    def wrap(self, app: Any) -> Any:
        """``app`` behind :class:`BearerAuth` when tokens are configured."""
        return app if self.tokens is None else BearerAuth(app, self.tokens)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The security and connection options, the same for ``serve`` and ``gateway``."""
    group = parser.add_argument_group("security (docs/security.md)")
    group.add_argument(
        "--auth-token-file",
        metavar="PATH",
        default=os.environ.get(TOKEN_FILE_ENV) or None,
        help="require 'Authorization: Bearer <token>' with a token of this file (one a line, "
        f"# comments; re-read when it changes) on every port (env {TOKEN_FILE_ENV})",
    )
    group.add_argument(
        "--tls-cert",
        metavar="PATH",
        default=os.environ.get(TLS_CERT_ENV) or None,
        help=f"serve TLS with this PEM certificate chain (env {TLS_CERT_ENV}; needs --tls-key)",
    )
    group.add_argument(
        "--tls-key",
        metavar="PATH",
        default=os.environ.get(TLS_KEY_ENV) or None,
        help=f"the PEM private key of --tls-cert (env {TLS_KEY_ENV})",
    )
    group.add_argument(
        "--tls-client-ca",
        metavar="PATH",
        help="require client certificates signed by these PEM CA certificates (mTLS)",
    )
    group.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="listen on a non-loopback address without --auth-token-file (warns at start)",
    )
    add_timeout_arguments(parser)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (got {text})")
    return value


def add_timeout_arguments(parser: argparse.ArgumentParser) -> None:
    """The connection timeouts, the same for ``serve`` and ``gateway``."""
    group = parser.add_argument_group("connections (docs/security.md)")
    group.add_argument(
        "--header-timeout",
        type=_seconds,
        default=DEFAULT_HEADER_TIMEOUT,
        help="seconds a connection has to send a whole request head before it is closed "
        f"(gRPC: to finish its handshake) (default {DEFAULT_HEADER_TIMEOUT:g})",
    )
    group.add_argument(
        "--body-timeout",
        type=_seconds,
        default=DEFAULT_BODY_TIMEOUT,
        help="seconds a request body may stall before the connection is closed "
        f"(default {DEFAULT_BODY_TIMEOUT:g})",
    )
    group.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=DEFAULT_IDLE_TIMEOUT,
        help="seconds a keep-alive HTTP connection may wait for its next request "
        f"(default {DEFAULT_IDLE_TIMEOUT:g})",
    )


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one (``localhost`` included)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # reported by the bind, naming --host
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def from_arguments(args: argparse.Namespace, host: str) -> ListenSecurity:
    """Validates the security options; raises ``CommandError`` (one line naming the option,
    exit 2) for a missing, unreadable or empty token file, a certificate without its key (or
    the reverse), a PEM file that does not load, a client CA without TLS, or a non-loopback
    ``host`` without a token and without ``--allow-unauthenticated``."""
    from otel_gemini._command_errors import CommandError

    tokens = None
    if args.auth_token_file:
        try:
            tokens = TokenFile(args.auth_token_file)
        except TokenFileError as error:
            raise CommandError(f"--auth-token-file {error}") from None
    cert = Path(args.tls_cert) if args.tls_cert else None
    key = Path(args.tls_key) if args.tls_key else None
    client_ca = Path(args.tls_client_ca) if args.tls_client_ca else None
    if cert is not None and key is None:
        raise CommandError("--tls-cert needs --tls-key (the certificate's private key)")
    if key is not None and cert is None:
        raise CommandError("--tls-key needs --tls-cert (the certificate it is the key of)")
    if client_ca is not None and cert is None:
        raise CommandError("--tls-client-ca needs --tls-cert and --tls-key (TLS on the port)")
    if cert is not None and key is not None:
        for option, path in (("--tls-cert", cert), ("--tls-key", key)):
            _check_readable(option, path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as error:
            raise CommandError(
                f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its matching "
                f"private key ({error.reason or error})"
            ) from None
        if client_ca is not None:
            _check_readable("--tls-client-ca", client_ca)
            try:
                context.load_verify_locations(cafile=client_ca)
            except ssl.SSLError as error:
                raise CommandError(
                    f"--tls-client-ca {client_ca}: not PEM CA certificates "
                    f"({error.reason or error})"
                ) from None
    security = ListenSecurity(tokens, cert, key, client_ca, bool(args.allow_unauthenticated))
    if tokens is None and not security.allow_unauthenticated and not is_loopback(host):
        raise CommandError(
            f"--host {host}: a non-loopback address needs --auth-token-file (or "
            f"{TOKEN_FILE_ENV}); --allow-unauthenticated accepts anyone who can reach it"
        )
    return security


def warn_if_open(security: ListenSecurity, host: str, command: str) -> None:
    """The start-up warning for ``--allow-unauthenticated`` on a non-loopback address."""
    import sys

    if security.tokens is None and not is_loopback(host):
        print(
            f"otel-gemini {command}: WARNING: listening on {host} without authentication "
            "(--allow-unauthenticated): anyone who can reach it can send spans and read "
            "costs; see docs/security.md",
            file=sys.stderr,
            flush=True,
        )


def _check_readable(option: str, path: Path) -> None:
    from otel_gemini._command_errors import CommandError

    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise CommandError(f"{option} {path}: cannot read it: {error.strerror}") from None
