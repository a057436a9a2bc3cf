"""What the fake Gemini server received: one recorded HTTP request, and how its path is read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# `/{version}/{resource}:{rpc}`, where resource is `models/m`, `tunedModels/t`,
# `publishers/google/models/m` (Vertex express mode)
# or `projects/p/locations/l/publishers/google/models/m` (Vertex AI).
_RPC_PATH = re.compile(r"^/(?P<version>v[^/]*)/(?P<resource>[^:]+):(?P<rpc>[A-Za-z]+)$")
_OPERATION_PATH = re.compile(r"^/(?P<version>v[^/]*)/(?P<name>.+/operations/[^/:]+)$")
_INTERACTIONS_PATH = re.compile(r"^/(?P<version>v[^/]*)/interactions$")
_INTERACTION_PATH = re.compile(r"^/(?P<version>v[^/]*)/interactions/(?P<id>[^/:]+)$")
_BATCH_PATH = re.compile(r"^/(?P<version>v[^/]*)/batches/(?P<id>[^/:]+)$")
_BATCHES_PATH = re.compile(r"^/(?P<version>v[^/]*)/batches$")
_VERTEX_SCOPE = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/")


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the fake received, as the client sent it.

    ``rpc`` is the method after the colon in the path (``generateContent``,
    ``streamGenerateContent``, ``countTokens``, ...), ``getOperation`` for an operation poll, or
    ``createInteraction`` for ``POST /{version}/interactions``, ``getInteraction`` for
    ``GET /{version}/interactions/{id}``, ``getBatch`` for ``GET /{version}/batches/{id}``,
    ``listBatches`` for ``GET /{version}/batches``; ``model`` is the bare model name
    (``gemini-2.5-flash``, no ``models/`` prefix; an interaction's ``model`` or ``agent``).
    ``vertex`` tells whether the path has the Vertex AI shape (``projects/...`` or
    ``publishers/...``). ``headers`` has lower-case names; ``json`` is the parsed body (``None``
    when empty or not JSON).
    """

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    json: Any
    rpc: str | None
    model: str | None
    vertex: bool
    project: str | None = None
    location: str | None = None
    sequence: int = 0
    """1-based arrival order at this fake (since its last reset)."""

    @property
    def texts(self) -> list[str]:
        """Every ``text`` string in the JSON body, in document order."""
        return list(_iter_texts(self.json))


def _iter_texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                yield item
            else:
                yield from _iter_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _iter_texts(item)


def parse_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
) -> RecordedRequest:
    """Reads the rpc, model and API surface from a request's path; parses a JSON body."""
    parsed_json: Any = None
    if body:
        try:
            parsed_json = json.loads(body)
        except ValueError:
            parsed_json = None
    rpc: str | None = None
    model: str | None = None
    resource = ""
    match = _RPC_PATH.match(path)
    if match:
        rpc = match["rpc"]
        resource = match["resource"]
        model = resource.rsplit("/", 1)[-1]
    elif method == "POST" and _INTERACTIONS_PATH.match(path):
        rpc = "createInteraction"
        if isinstance(parsed_json, dict):
            named = parsed_json.get("model") or parsed_json.get("agent")
            model = named.rsplit("/", 1)[-1] if isinstance(named, str) else None
    elif method == "GET" and _INTERACTION_PATH.match(path):
        rpc = "getInteraction"
    elif method == "GET" and _BATCH_PATH.match(path):
        rpc = "getBatch"
    elif method == "GET" and _BATCHES_PATH.match(path):
        rpc = "listBatches"
    else:
        op_match = _OPERATION_PATH.match(path)
        if op_match and method == "GET":
            rpc = "getOperation"
            resource = op_match["name"]
            model_match = re.search(r"models/([^/]+)/operations/", resource)
            model = model_match[1] if model_match else None
    scope = _VERTEX_SCOPE.match(resource)
    vertex = scope is not None or resource.startswith("publishers/")
    return RecordedRequest(
        method=method,
        path=path,
        query=dict(query),
        headers={name.lower(): value for name, value in headers.items()},
        body=body,
        json=parsed_json,
        rpc=rpc,
        model=model,
        vertex=vertex,
        project=scope["project"] if scope else None,
        location=scope["location"] if scope else None,
    )


def resource_of(request: RecordedRequest) -> str:
    """The resource part of an rpc path (``models/m`` or ``projects/.../models/m``)."""
    match = _RPC_PATH.match(request.path)
    return match["resource"] if match else ""
