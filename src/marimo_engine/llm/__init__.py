"""The LLM layer: model strings, fallback chains, usage limits and cost, built on pydantic-ai.

Nothing heavy is imported here: pydantic-ai and the provider SDKs load when
a model is built. This package knows nothing of plans, the engine or agents.
"""

from __future__ import annotations

from marimo_engine.llm.errors import describe_model_exception, model_errors
from marimo_engine.llm.models import (
    DEFAULT_TIMEOUT_S,
    PROVIDERS,
    ModelSpec,
    build_model,
    describe_model,
    is_priced,
    parse_model_string,
    request_settings,
)
from marimo_engine.llm.redaction import Redactor, redact_secrets, secret_values
from marimo_engine.llm.usage import (
    ModelLimits,
    ModelUsage,
    UsageReport,
    UsageTracker,
    model_label,
    response_cost_usd,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "PROVIDERS",
    "ModelLimits",
    "ModelSpec",
    "ModelUsage",
    "Redactor",
    "UsageReport",
    "UsageTracker",
    "build_model",
    "describe_model",
    "describe_model_exception",
    "is_priced",
    "model_errors",
    "model_label",
    "parse_model_string",
    "redact_secrets",
    "request_settings",
    "response_cost_usd",
    "secret_values",
]
