"""Attribute names this package writes and reads: the one home for span-shape strings.

GenAI semantic-convention names come first, then the Langfuse mapping keys
(see Langfuse's OTel ingestion contract), then our own ``otel_gemini.*`` names.
Instrumentation writes these; the cost processor, the cost store and the gateway
read them. Keeping them in one module means a rename is one edit.
"""

from __future__ import annotations

from typing import Final

# --- GenAI semantic conventions ------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # older conventions; read, never written
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
# fetch_response spans: the fetched response's lifecycle status; where a resumed stream restarts.
GEN_AI_RESPONSE_STATUS: Final = "gen_ai.response.status"
GEN_AI_REQUEST_STREAM_CURSOR: Final = "gen_ai.request.stream_cursor"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"

GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
# Content capture only: the tools a generation offered the model (a JSON array).
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"

# Usage. input_tokens counts ALL input (cached and tool-use prompt tokens included);
# output_tokens counts ALL output (thinking included). The detail counts are subsets.
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"

MODALITIES_IN: Final = ("text", "image", "audio", "video")
MODALITIES_OUT: Final = ("text", "image", "audio")


def usage_input_tokens_by_modality(modality: str) -> str:
    """``gen_ai.usage.{modality}.input_tokens`` (modality lower case)."""
    return f"gen_ai.usage.{modality}.input_tokens"


def usage_output_tokens_by_modality(modality: str) -> str:
    """``gen_ai.usage.{modality}.output_tokens`` (modality lower case)."""
    return f"gen_ai.usage.{modality}.output_tokens"


# Values
PROVIDER_GEMINI: Final = "gcp.gemini"
PROVIDER_VERTEX_AI: Final = "gcp.vertex_ai"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
# Fetching a response made earlier (no inference: token usage MUST NOT be reported on it).
OP_FETCH_RESPONSE: Final = "fetch_response"
# Creating a batch job (its requests run later, each recorded as a generation).
OP_CREATE_BATCH: Final = "create_batch"

# The official OTel google-genai instrumentation names its Interactions API spans' operation
# so; their output_tokens leave thoughts out (its generate_content spans count them): read-only.
OFFICIAL_OP_INTERACTIONS_CREATE: Final = "interactions.create"
# Official OTel google-genai instrumentation (older semconv) and OpenInference: read-only.
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
LLM_MODEL_NAME: Final = "llm.model_name"
LLM_PROVIDER: Final = "llm.provider"
LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
LLM_TOKEN_COUNT_PROMPT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_PROMPT_AUDIO: Final = "llm.token_count.prompt_details.audio"
LLM_TOKEN_COUNT_COMPLETION_REASONING: Final = "llm.token_count.completion_details.reasoning"
LLM_TOKEN_COUNT_COMPLETION_AUDIO: Final = "llm.token_count.completion_details.audio"
LLM_SYSTEM: Final = "llm.system"


def usage_cache_read_input_tokens_by_modality(modality: str) -> str:
    """``gen_ai.usage.{modality}.cache_read.input_tokens``: the official OTel instrumentation's
    per-modality cache reads (read-only)."""
    return f"gen_ai.usage.{modality}.cache_read.input_tokens"


# --- general conventions --------------------------------------------------------------------
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"

# --- Langfuse mapping -----------------------------------------------------------------------
LANGFUSE_OBSERVATION_TYPE: Final = "langfuse.observation.type"
LANGFUSE_COST_DETAILS: Final = "langfuse.observation.cost_details"
LANGFUSE_USAGE_DETAILS: Final = "langfuse.observation.usage_details"
LANGFUSE_COMPLETION_START_TIME: Final = "langfuse.observation.completion_start_time"
LANGFUSE_TRACE_TAGS: Final = "langfuse.trace.tags"
SERVICE_NAME: Final = "service.name"  # a resource attribute
LANGFUSE_TRACE_METADATA_PREFIX: Final = "langfuse.trace.metadata."
LANGFUSE_USER_ID: Final = "langfuse.user.id"
LANGFUSE_SESSION_ID: Final = "langfuse.session.id"
# Where a span names its user and session, in Langfuse's order of precedence.
USER_ID_KEYS: Final = (LANGFUSE_USER_ID, USER_ID)
SESSION_ID_KEYS: Final = (LANGFUSE_SESSION_ID, SESSION_ID, GEN_AI_CONVERSATION_ID)

# --- otel_gemini.* (project-specific) -------------------------------------------------------
# priced | unknown_model | no_usage | implausible_usage | covered
COST_STATUS: Final = "otel_gemini.cost.status"
PRICES_VERSION: Final = "otel_gemini.prices.version"
COST_STATUS_PRICED: Final = "priced"
COST_STATUS_UNKNOWN_MODEL: Final = "unknown_model"
COST_STATUS_NO_USAGE: Final = "no_usage"
# Counts no Gemini request can bill (negative, fractional, not finite, above the documented
# bound): kept on the span as sent, never priced (docs/security.md, "Input limits").
COST_STATUS_IMPLAUSIBLE_USAGE: Final = "implausible_usage"
# Why a span with usage has no cost (unknown_model, implausible_usage), for people reading it.
COST_REASON: Final = "otel_gemini.cost.reason"
# Another span describing the same billed request (a descendant closer to the wire, or one
# with the same response id) is priced: this one keeps its usage and is counted nowhere.
COST_STATUS_COVERED: Final = "covered"
# The price-table entry (model family id) that priced the span, e.g. "gemini-2.5-flash".
PRICES_MODEL: Final = "otel_gemini.prices.model"

# Tool-use prompt tokens are part of input_tokens; kept separately so pricing can show them.
USAGE_TOOL_USE_PROMPT_TOKENS: Final = "otel_gemini.usage.tool_use_prompt.input_tokens"
# Per-modality cache reads (Gemini reports cache_tokens_details by modality).
USAGE_CACHE_READ_AUDIO_TOKENS: Final = "otel_gemini.usage.cache_read.audio.input_tokens"
USAGE_CACHE_READ_IMAGE_TOKENS: Final = "otel_gemini.usage.cache_read.image.input_tokens"
USAGE_CACHE_READ_VIDEO_TOKENS: Final = "otel_gemini.usage.cache_read.video.input_tokens"
# Audio seconds measured from streamed PCM bytes (Live API); used for per-minute prices.
USAGE_AUDIO_INPUT_SECONDS: Final = "otel_gemini.usage.audio.input_seconds"
USAGE_AUDIO_OUTPUT_SECONDS: Final = "otel_gemini.usage.audio.output_seconds"
# Billing context read by pricing: "standard" | "flex" | "priority" | "batch".
REQUEST_SERVICE_TIER: Final = "otel_gemini.request.service_tier"
# Which SDK entry point made the call (generate_content, generate_content_stream, chat...).
SDK_METHOD: Final = "otel_gemini.sdk.method"
# Interactions API (client.interactions.create)
SDK_METHOD_INTERACTIONS_CREATE: Final = "interactions.create"
SDK_METHOD_INTERACTIONS_GET: Final = "interactions.get"
SDK_METHOD_BATCHES_CREATE: Final = "batches.create"
# A batch job's state as the SDK reports it (JOB_STATE_PENDING, ...); its inlined requests.
BATCH_STATE: Final = "otel_gemini.batch.state"
BATCH_REQUESTS: Final = "otel_gemini.batch.requests"
SERVICE_TIER_BATCH: Final = "batch"  # the REQUEST_SERVICE_TIER of a batch job's requests
SDK_METHOD_INTERACTIONS_CONNECT: Final = "interactions.connect"  # a Live interaction connection
# A Live interaction connection: output steps received; seconds from opening to first output.
LIVE_INTERACTION_STEPS: Final = "otel_gemini.live_interaction.steps"
LIVE_INTERACTION_TIME_TO_FIRST_OUTPUT: Final = "otel_gemini.live_interaction.time_to_first_output"
# The interaction's status as the API reported it (completed, requires_continuation,
# requires_action, in_progress for a background one...); finish_reasons holds its mapping.
INTERACTION_STATUS: Final = "otel_gemini.interaction.status"
# background=True: the create returns at once and the work (and its usage) comes later.
INTERACTION_BACKGROUND: Final = "otel_gemini.interaction.background"
# Live API
LIVE_TURN_COUNT: Final = "otel_gemini.live.turns"
LIVE_INTERRUPTED: Final = "otel_gemini.live.interrupted"
LIVE_INTERRUPTION_COUNT: Final = "otel_gemini.live.interruptions"
LIVE_TIME_TO_FIRST_AUDIO: Final = "otel_gemini.live.time_to_first_audio"
OP_LIVE_SESSION: Final = "live_session"  # gen_ai.operation.name of a Live session span
SDK_METHOD_LIVE_CONNECT: Final = "live.connect"
LIVE_TURN_INDEX: Final = "otel_gemini.live.turn.index"  # 1-based; marks a Live turn span
LIVE_SESSION_ID: Final = "otel_gemini.live.session_id"  # the API's session id, when sent
LIVE_RESPONSE_MODALITIES: Final = "otel_gemini.live.response_modalities"
LIVE_TOOL_CALL_COUNT: Final = "otel_gemini.live.tool_calls"
LIVE_TOOL_CANCELLED: Final = "otel_gemini.live.tool.cancelled"
LIVE_MESSAGES_RECEIVED: Final = "otel_gemini.live.messages_received"
# closed | server_closed | connection_lost | cancelled | error | connect_failed; a Live
# interaction connection: completed | cancelled | reconnection_required | detached | closed
LIVE_END_REASON: Final = "otel_gemini.live.end_reason"
LIVE_CLOSE_CODE: Final = "otel_gemini.live.close_code"  # WebSocket close code, when known
# Session resumption (a new connection continuing a session) and the server's goAway.
LIVE_RESUMED: Final = "otel_gemini.live.resumed"  # True: connected with a resumption handle
LIVE_RESUMABLE: Final = "otel_gemini.live.resumable"  # the server's last word on it
LIVE_RESUMPTION_UPDATES: Final = "otel_gemini.live.resumption_updates"
LIVE_GO_AWAY: Final = "otel_gemini.live.go_away"  # the event, when the server announces a close
LIVE_GO_AWAY_TIME_LEFT: Final = "otel_gemini.live.go_away.time_left"  # seconds, as announced
# A session's cost: the sum of its turns' costs, added by the cost processor. Not
# gen_ai.usage.cost / langfuse.observation.cost_details, which Langfuse would count again.
LIVE_SESSION_COST: Final = "otel_gemini.live.cost"
LIVE_SESSION_COST_DETAILS: Final = "otel_gemini.live.cost_details"
LIVE_SESSION_COST_STATUS: Final = "otel_gemini.live.cost.status"


def live_usage_total(turn_usage_key: str) -> str:
    """The session-span name for the sum of a turn usage attribute over the session's turns:
    ``gen_ai.usage.audio.input_tokens`` → ``otel_gemini.live.usage.audio.input_tokens``,
    ``otel_gemini.usage.audio.input_seconds`` → ``otel_gemini.live.usage.audio.input_seconds``.
    Outside ``gen_ai.usage.*`` so that nothing prices (or Langfuse counts) the session again."""
    for prefix in ("gen_ai.usage.", "otel_gemini.usage."):
        if turn_usage_key.startswith(prefix):
            return "otel_gemini.live.usage." + turn_usage_key[len(prefix) :]
    return "otel_gemini.live.usage." + turn_usage_key


# Per-unit usage (Imagen, Veo, Vertex embeddings billed by character).
USAGE_OUTPUT_IMAGE_COUNT: Final = "otel_gemini.usage.image.output_count"
USAGE_OUTPUT_VIDEO_SECONDS: Final = "otel_gemini.usage.video.output_seconds"
USAGE_BILLABLE_CHARACTERS: Final = "otel_gemini.usage.billable_characters"
# Count/compute tokens: not billed usage, reported for information only.
COUNT_TOKENS_TOTAL: Final = "otel_gemini.count_tokens.total_tokens"
# Streams: whether the caller consumed the stream to its end (False: broke out or abandoned).
STREAM_COMPLETED: Final = "otel_gemini.stream.completed"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
