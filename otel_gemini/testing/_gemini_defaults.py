"""What the fake Gemini answers when nothing is scripted: deterministic replies per rpc.

Token counts are derived from the request so tests can predict them: a text of ``n`` characters
counts ``ceil(n / 4)`` tokens (at least 1), summed over all ``text`` strings in the body.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace
from typing import Any

from otel_gemini.testing._gemini_batches import CREATE_BATCH, created_batch
from otel_gemini.testing._gemini_interactions import (
    CREATE_INTERACTION,
    GET_INTERACTION,
    InteractionReply,
    input_text,
)
from otel_gemini.testing._gemini_replies import (
    HttpReply,
    generate_body,
    google_error_body,
    is_embedding_predict,
    response_id_for,
    sse_reply,
)
from otel_gemini.testing._gemini_requests import RecordedRequest, resource_of
from otel_gemini.testing._gemini_usage import ScriptedUsage

DEFAULT_EMBEDDING_DIMENSIONS = 8
_MLDEV_VIDEO_RESPONSE_TYPE = (
    "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
)

# A valid 1x1 transparent PNG: enough for the SDK's Image type.
_PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def estimate_tokens(text: str) -> int:
    """The fake's token count of a text: ``ceil(len(text) / 4)``, at least 1."""
    return max(1, -(-len(text) // 4))


def echo_text(request: RecordedRequest) -> str:
    """The default answer text: ``echo: `` and the last text of the request."""
    texts = request.texts
    return "echo: " + (texts[-1] if texts else "")


def default_usage(request: RecordedRequest, answer: str) -> ScriptedUsage:
    prompt = estimate_tokens("".join(request.texts))
    candidates = estimate_tokens(answer)
    return ScriptedUsage(
        prompt=prompt,
        candidates=candidates,
        prompt_by_modality={"TEXT": prompt},
        candidates_by_modality={"TEXT": candidates},
    )


def split_text(text: str, pieces: int) -> list[str]:
    """Splits ``text`` at word boundaries into at most ``pieces`` parts that join back to it."""
    words = re.findall(r"\S+\s*|\s+", text) or [text]
    pieces = max(1, min(pieces, len(words)))
    size, extra = divmod(len(words), pieces)
    parts: list[str] = []
    start = 0
    for index in range(pieces):
        end = start + size + (1 if index < extra else 0)
        parts.append("".join(words[start:end]))
        start = end
    return parts


def default_reply(request: RecordedRequest) -> HttpReply:
    """The unscripted answer to ``request``: an echo, embeddings, counts, an image, a video."""
    rpc = request.rpc
    response_id = response_id_for(request)
    if rpc == "generateContent":
        answer = echo_text(request)
        return HttpReply.json(
            generate_body(
                [{"text": answer}],
                usage=default_usage(request, answer),
                finish_reason="STOP",
                response_id=response_id,
                model_version=request.model,
            )
        )
    if rpc == "streamGenerateContent":
        return _default_stream(request)
    if rpc == CREATE_INTERACTION:
        return _default_interaction(request)
    if rpc == CREATE_BATCH:
        return HttpReply.json(created_batch(request))
    if rpc == GET_INTERACTION:  # the fake keeps no interactions: script fetches
        name = request.path.rsplit("/", 1)[-1]
        body = google_error_body(404, f"interaction {name} not found", "NOT_FOUND")
        return HttpReply.json(body, status=404)
    if rpc == "countTokens":
        return HttpReply.json(_count_tokens_body(request))
    if rpc == "computeTokens":
        return HttpReply.json(_compute_tokens_body(request))
    if rpc in ("embedContent", "batchEmbedContents") or (
        rpc == "predict" and is_embedding_predict(request)
    ):
        return HttpReply.json(_embedding_body(request))
    if rpc == "predict":
        return HttpReply.json(_image_body(request))
    if rpc == "predictLongRunning":
        operation = f"{resource_of(request)}/operations/fake-operation-{request.sequence}"
        return HttpReply.json({"name": operation})
    if rpc == "getOperation":
        return HttpReply.json(_finished_video_operation(request.path.split("/", 2)[-1], False))
    if rpc == "fetchPredictOperation":
        name = request.json.get("operationName", "") if isinstance(request.json, dict) else ""
        return HttpReply.json(_finished_video_operation(str(name), True))
    return HttpReply.json(
        google_error_body(404, f"fake Gemini does not serve {request.method} {request.path}"),
        status=404,
    )


def _default_stream(request: RecordedRequest) -> HttpReply:
    response_id = response_id_for(request)
    answer = echo_text(request)
    final = default_usage(request, answer)
    texts = split_text(answer, 3)
    chunks = []
    for index, text in enumerate(texts):
        last = index == len(texts) - 1
        so_far = estimate_tokens("".join(texts[: index + 1]))
        chunks.append(
            generate_body(
                [{"text": text}],
                usage=final if last else final.partial(so_far),
                finish_reason="STOP" if last else None,
                response_id=response_id,
                model_version=request.model,
            )
        )
    return sse_reply(chunks)


def _default_interaction(request: RecordedRequest) -> HttpReply:
    """``echo: {input}`` in three pieces when streamed, completed, with text usage."""
    given = input_text(request)
    answer = "echo: " + given
    prompt, candidates = estimate_tokens(given), estimate_tokens(answer)
    usage = ScriptedUsage(
        prompt=prompt,
        candidates=candidates,
        prompt_by_modality={"TEXT": prompt},
        candidates_by_modality={"TEXT": candidates},
    )
    return InteractionReply(split_text(answer, 3), usage=usage).render(request)


def _count_tokens_body(request: RecordedRequest) -> dict[str, Any]:
    text = "".join(request.texts)
    total = estimate_tokens(text)
    if request.vertex:
        return {"totalTokens": total, "totalBillableCharacters": len(text)}
    return {
        "totalTokens": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
    }


def _compute_tokens_body(request: RecordedRequest) -> dict[str, Any]:
    words = "".join(request.texts).split()
    return {
        "tokensInfo": [
            {
                "tokenIds": [str(_word_id(word)) for word in words],
                "tokens": [base64.b64encode(word.encode()).decode() for word in words],
                "role": "user",
            }
        ]
    }


def _word_id(word: str) -> int:
    return int.from_bytes(hashlib.sha256(word.encode()).digest()[:3], "big")


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic vector in [-1, 1] for ``text``."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(round(byte / 127.5 - 1.0, 6) for byte in digest)
        counter += 1
    return values[:dimensions]


def _embedding_body(request: RecordedRequest) -> dict[str, Any]:
    body = request.json if isinstance(request.json, dict) else {}
    if request.rpc == "embedContent":
        text = "".join(request.texts)
        dims = _dimensions(body) or DEFAULT_EMBEDDING_DIMENSIONS
        tokens = estimate_tokens(text)
        return {
            "embedding": {"values": embedding_vector(text, dims)},
            "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens},
        }
    if request.rpc == "batchEmbedContents":
        embeddings = []
        for item in body.get("requests", []):
            item_request = _with_json(request, item)
            dims = _dimensions(item) or DEFAULT_EMBEDDING_DIMENSIONS
            embeddings.append({"values": embedding_vector("".join(item_request.texts), dims)})
        return {"embeddings": embeddings}
    dims = _dimensions(body.get("parameters") or {}) or DEFAULT_EMBEDDING_DIMENSIONS
    predictions = []
    characters = 0
    for instance in body.get("instances", []):
        text = str(instance.get("content", ""))
        characters += len(text)
        predictions.append(
            {
                "embeddings": {
                    "values": embedding_vector(text, dims),
                    "statistics": {"token_count": estimate_tokens(text), "truncated": False},
                }
            }
        )
    return {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}


def _dimensions(config: dict[str, Any]) -> int | None:
    value = config.get("outputDimensionality")
    return int(value) if isinstance(value, int) else None


def _with_json(request: RecordedRequest, body: Any) -> RecordedRequest:
    return replace(request, json=body)


def _image_body(request: RecordedRequest) -> dict[str, Any]:
    body = request.json if isinstance(request.json, dict) else {}
    count = int((body.get("parameters") or {}).get("sampleCount") or 1)
    image = {"bytesBase64Encoded": base64.b64encode(_PNG_1X1).decode(), "mimeType": "image/png"}
    return {"predictions": [dict(image) for _ in range(count)]}


def _finished_video_operation(name: str, vertex: bool) -> dict[str, Any]:
    if vertex:
        response: dict[str, Any] = {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse",
            "videos": [{"gcsUri": "gs://fake-gemini/video.mp4", "mimeType": "video/mp4"}],
        }
    else:
        response = {
            "@type": _MLDEV_VIDEO_RESPONSE_TYPE,
            "generateVideoResponse": {
                "generatedSamples": [{"video": {"uri": "https://fake-gemini.invalid/video.mp4"}}]
            },
        }
    return {"name": name, "done": True, "response": response}
