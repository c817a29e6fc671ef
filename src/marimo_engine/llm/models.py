"""Model strings to pydantic-ai models, with a fallback chain and no slow SDK retries.

A model string is `PROVIDER:NAME`:

- `openai:NAME`: pydantic-ai's `OpenAIChatModel` (Chat Completions), with
  `OPENAI_API_KEY`; or, with `OPENAI_BASE_URL`, any OpenAI-compatible server
  (vLLM, llama.cpp, LM Studio), where the key is optional.
- `anthropic:NAME`: `AnthropicModel`, with `ANTHROPIC_API_KEY`
  (`ANTHROPIC_BASE_URL` optional).
- `ollama:NAME`: `OllamaModel` (OpenAI-compatible), with `OLLAMA_BASE_URL`
  such as `http://localhost:11434/v1` (`OLLAMA_API_KEY` optional).

`openai:` uses Chat Completions rather than the Responses API on purpose:
it is the API that OpenAI-compatible servers implement.

Provider SDKs retry a failed request twice by default, waiting up to a
minute on a 429. We set `max_retries=0` (pydantic-ai's `ModelSettings`,
which is forwarded to the SDK client) so that a rate limit or a provider
error moves to the next model of the chain at once.

`timeout_s` is a deadline for the whole request (pydantic-ai's
`request_timeout`, enforced on anyio's clock from the moment the request
starts until the last byte of the answer, streamed or not), not the SDK's
per-read timeout: a server that trickles a keep-alive byte every half
second cannot hold a request past it.

A chain falls back on a provider error (`ModelAPIError`) and on an answer
that is not the provider's format at all, such as an HTML page from a
gateway with HTTP 200 (`UnexpectedModelBehavior` raised while reading the
response).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from marimo_engine.errors import ModelConfigError

if TYPE_CHECKING:
    from pydantic_ai.models import Model

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "PROVIDERS",
    "ModelSpec",
    "build_model",
    "describe_model",
    "is_priced",
    "parse_model_string",
    "request_settings",
]

DEFAULT_TIMEOUT_S = 120.0
"""Seconds a single model request may take, first byte to last, before it fails (and falls back)."""

PROVIDERS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "ollama": ("OLLAMA_BASE_URL",),
}
"""Known providers and the environment variables that configure them."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model string.

    Attributes:
        provider: One of `PROVIDERS`, such as `"openai"`.
        name: The provider's model name, such as `"gpt-4o-mini"`.
    """

    provider: str
    name: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.name}"


def parse_model_string(text: str) -> ModelSpec:
    """Parse `PROVIDER:NAME` into a `ModelSpec`.

    Args:
        text: A model string such as `"openai:gpt-4o-mini"`, `"anthropic:claude-sonnet-4-5"`
            or `"ollama:llama3.2"`. The name may itself contain colons (`"ollama:qwen2.5:7b"`).

    Returns:
        The provider and name.

    Raises:
        ModelConfigError: No colon, an empty part, or an unknown provider; the
            message lists the known providers.
    """
    provider, sep, name = text.strip().partition(":")
    known = ", ".join(repr(p) for p in PROVIDERS)
    if not sep or not provider or not name:
        raise ModelConfigError(
            f"Model {text!r} is not of the form 'PROVIDER:NAME'; use one of the providers "
            f"{known}, such as 'openai:gpt-4o-mini'."
        )
    provider = provider.lower()
    if provider not in PROVIDERS:
        raise ModelConfigError(
            f"Model {text!r} names an unknown provider {provider!r}; known providers: {known}. "
            "For an OpenAI-compatible server use 'openai:NAME' with OPENAI_BASE_URL."
        )
    return ModelSpec(provider=provider, name=name)


def request_settings(timeout_s: float | None, max_retries: int = 0) -> dict[str, object]:
    """Return the pydantic-ai `ModelSettings` (as a dict) for a deadline and SDK retries.

    Args:
        timeout_s: Seconds for the whole request (`request_timeout`, which
            pydantic-ai enforces for every model, `FunctionModel` included)
            and the SDK's own timeout per attempt (`timeout`); `None` sets
            neither.
        max_retries: Retries made by the provider SDK itself.

    Returns:
        Such as `{"max_retries": 0, "timeout": 120.0, "request_timeout": 120.0}`.

    Raises:
        ModelConfigError: `timeout_s` is not a positive number.
    """
    settings: dict[str, object] = {"max_retries": max_retries}
    if timeout_s is not None:
        if not timeout_s > 0:
            raise ModelConfigError(
                f"The model timeout is {timeout_s!r} seconds; use a positive number of seconds."
            )
        settings["timeout"] = timeout_s
        settings["request_timeout"] = timeout_s
    return settings


def _ollama_base_url(spec: ModelSpec, base_url: str) -> str:
    """Return `OLLAMA_BASE_URL` when it ends in `/v1`, else say what to add."""
    from urllib.parse import urlsplit

    path = urlsplit(base_url).path.rstrip("/")
    if not path.endswith("/v1"):
        fixed = base_url.rstrip("/") + "/v1"
        raise ModelConfigError(
            f"Model '{spec}' needs OLLAMA_BASE_URL to end in '/v1' (Ollama's OpenAI-compatible "
            f"API), but it is {base_url!r}; set OLLAMA_BASE_URL={fixed}."
        )
    return base_url


def _build_one(
    spec: ModelSpec, env: Mapping[str, str], *, timeout_s: float | None, max_retries: int
) -> Model:
    from pydantic_ai.settings import ModelSettings

    settings = ModelSettings(**request_settings(timeout_s, max_retries))  # type: ignore[typeddict-item]
    if spec.provider == "openai":
        api_key = env.get("OPENAI_API_KEY") or None
        base_url = env.get("OPENAI_BASE_URL") or None
        if api_key is None and base_url is None:
            raise ModelConfigError(
                f"Model '{spec}' has no key or endpoint: set OPENAI_API_KEY, or OPENAI_BASE_URL "
                "(plus OPENAI_API_KEY if the server needs one) for an OpenAI-compatible server."
            )
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        provider = OpenAIProvider(base_url=base_url, api_key=api_key or "api-key-not-set")
        return OpenAIChatModel(spec.name, provider=provider, settings=settings)
    if spec.provider == "anthropic":
        api_key = env.get("ANTHROPIC_API_KEY") or None
        if api_key is None:
            raise ModelConfigError(
                f"Model '{spec}' has no key: set ANTHROPIC_API_KEY "
                "(and ANTHROPIC_BASE_URL for a proxy)."
            )
        try:
            from pydantic_ai.models.anthropic import AnthropicModel
            from pydantic_ai.providers.anthropic import AnthropicProvider
        except ImportError as exc:  # the extra is missing
            raise ModelConfigError(
                f"Model '{spec}' needs the Anthropic SDK: "
                'pip install "pydantic-ai-slim[anthropic]".'
            ) from exc
        anthropic_provider = AnthropicProvider(
            api_key=api_key, base_url=env.get("ANTHROPIC_BASE_URL") or None
        )
        return AnthropicModel(spec.name, provider=anthropic_provider, settings=settings)
    if spec.provider == "ollama":
        base_url = env.get("OLLAMA_BASE_URL") or None
        if base_url is None:
            raise ModelConfigError(
                f"Model '{spec}' has no endpoint: set OLLAMA_BASE_URL, "
                "such as http://localhost:11434/v1."
            )
        from pydantic_ai.models.ollama import OllamaModel
        from pydantic_ai.providers.ollama import OllamaProvider

        ollama_provider = OllamaProvider(
            base_url=_ollama_base_url(spec, base_url), api_key=env.get("OLLAMA_API_KEY") or None
        )
        return OllamaModel(spec.name, provider=ollama_provider, settings=settings)
    raise ModelConfigError(f"Model '{spec}' names an unknown provider {spec.provider!r}.")


def build_model(
    model: str | Model,
    fallbacks: Sequence[str | Model] = (),
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    max_retries: int = 0,
) -> Model:
    """Build a pydantic-ai model from a model string, with an optional fallback chain.

    Args:
        model: A model string (`"openai:gpt-4o-mini"`, see the module docs) or
            a pydantic-ai `Model` instance, used as is (tests pass `FunctionModel`).
        fallbacks: Models tried in order when the one before fails with a
            provider error (`ModelAPIError`: HTTP errors such as 429 and 5xx,
            connection errors, the request deadline) or answers something
            that cannot be read as the provider's format (an HTML page).
        env: Environment to read keys and endpoints from; `None` means
            `os.environ`.
        timeout_s: Seconds for a whole request to a model built from a
            string, first byte to last (see the module docs); `None` keeps
            the SDK's default per read (10 minutes for OpenAI). A `Model`
            passed in keeps its own settings.
        max_retries: Retries made by the provider SDK itself before failing
            (and falling back). 0 moves to the next model at once.

    Returns:
        The model, or a pydantic-ai `FallbackModel` over all of them.

    Raises:
        ModelConfigError: A model string is malformed, its provider has no
            key or endpoint configured (the message names the variables to
            set), `OLLAMA_BASE_URL` does not end in `/v1`, or `timeout_s` is
            not positive.
    """
    environ = os.environ if env is None else env
    models: list[Model] = []
    for item in (model, *fallbacks):
        if isinstance(item, str):
            models.append(
                _build_one(
                    parse_model_string(item),
                    environ,
                    timeout_s=timeout_s,
                    max_retries=max_retries,
                )
            )
        else:
            models.append(item)
    if len(models) == 1:
        return models[0]
    from pydantic_ai.exceptions import ModelAPIError, UnexpectedModelBehavior
    from pydantic_ai.models.fallback import FallbackModel

    return FallbackModel(
        models[0], *models[1:], fallback_on=(ModelAPIError, UnexpectedModelBehavior)
    )


def describe_model(model: Model) -> str:
    """Return `provider:name` for a model, or `a -> b` for a fallback chain.

    Args:
        model: A pydantic-ai model.

    Returns:
        A short human label, such as `"openai:gpt-4o-mini -> ollama:llama3.2"`.
    """
    inner = getattr(model, "models", None)
    if isinstance(inner, list) and inner:
        return " -> ".join(describe_model(m) for m in inner)
    return f"{model.system}:{model.model_name}"


def is_priced(model: Model) -> bool:
    """Whether genai-prices (pydantic-ai's price table) knows a price for the model.

    Args:
        model: A pydantic-ai model; a fallback chain is priced only when every
            model in it is.

    Returns:
        `True` when a cost in US dollars can be computed for its responses.
        Matching follows pydantic-ai: the endpoint URL first, then the
        provider name (so `openai:gpt-4o-mini` behind `OPENAI_BASE_URL` is
        priced at OpenAI's list price).
    """
    inner = getattr(model, "models", None)
    if isinstance(inner, list) and inner:
        return all(is_priced(m) for m in inner)
    from genai_prices.data_snapshot import get_snapshot

    try:
        base_url = model.base_url
    except Exception:  # some models have no URL (function, test)
        base_url = None
    candidates = [(None, base_url), (model.system, None)]
    for provider_id, provider_url in candidates:
        if not provider_id and not provider_url:
            continue
        try:
            get_snapshot().find_provider_model(
                model.model_name,
                provider=None,
                provider_id=provider_id,
                provider_api_url=provider_url,
            )
        except LookupError:
            continue
        return True
    return False
