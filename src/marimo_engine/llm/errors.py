"""Translate pydantic-ai and provider exceptions into `ModelError`, once, at the boundary."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from marimo_engine.errors import ModelConfigError, ModelError, ModelLimitError

__all__ = ["describe_model_exception", "model_errors"]

_LIMIT_NAME = re.compile(r"\b(\w+_limit)\b")
_MAX_BODY_CHARS = 300


def describe_model_exception(exc: BaseException) -> str:
    """Return a one-line description of a provider exception.

    Args:
        exc: Any exception raised while talking to a model; pydantic-ai's
            `ModelHTTPError` gives the model, status and a cut body.

    Returns:
        Such as `"model 'gpt-4o' answered HTTP 429: {...}"`.
    """
    from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError

    if isinstance(exc, ModelHTTPError):
        body = str(exc.body)
        if len(body) > _MAX_BODY_CHARS:
            body = body[:_MAX_BODY_CHARS] + "…"
        return f"model {exc.model_name!r} answered HTTP {exc.status_code}: {body}"
    if isinstance(exc, ModelAPIError):
        return f"model {exc.model_name!r} failed: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def model_errors() -> Iterator[None]:
    """Turn pydantic-ai's exceptions into `ModelError` and its children.

    Yields:
        Nothing; wrap the code that calls the model.

    Raises:
        ModelLimitError: A usage limit was reached (`UsageLimitExceeded`);
            `.limit` names it, such as `"request_limit"`.
        ModelConfigError: pydantic-ai refused the configuration (`UserError`).
        ModelError: Every model failed (`FallbackExceptionGroup`, one clause
            per model), a provider error (`ModelAPIError`), or a response
            the agent could not use (`UnexpectedModelBehavior`).
    """
    from pydantic_ai.exceptions import (
        FallbackExceptionGroup,
        ModelAPIError,
        UnexpectedModelBehavior,
        UsageLimitExceeded,
        UserError,
    )

    try:
        yield
    except ModelError:
        raise
    except UsageLimitExceeded as exc:
        match = _LIMIT_NAME.search(str(exc))
        limit = match.group(1) if match else "usage_limit"
        raise ModelLimitError(
            f"The model stopped at a usage limit: {exc}. Raise the limit or simplify the goal.",
            limit=limit,
        ) from exc
    except FallbackExceptionGroup as exc:
        parts = "; ".join(describe_model_exception(e) for e in exc.exceptions)
        raise ModelError(
            f"All {len(exc.exceptions)} models failed: {parts}. "
            "Check the keys and endpoints, or add a --fallback model."
        ) from exc
    except ModelAPIError as exc:
        raise ModelError(
            f"The model provider failed: {describe_model_exception(exc)}. "
            "Check the key and endpoint, or add a --fallback model."
        ) from exc
    except UnexpectedModelBehavior as exc:
        raise ModelError(f"The model's answer could not be used: {exc}") from exc
    except UserError as exc:
        raise ModelConfigError(f"The model is misconfigured: {exc}") from exc
