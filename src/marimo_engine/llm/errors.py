"""Translate pydantic-ai and provider exceptions into `ModelError`, once, at the boundary.

Every message passes through `redact_secrets`: a provider's error body may
echo the key it was sent, and these messages reach the terminal, stdout
(`--json`) and the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from marimo_engine.errors import ModelConfigError, ModelError, ModelLimitError
from marimo_engine.llm.redaction import redact_secrets

__all__ = ["describe_model_exception", "model_errors"]

_LIMIT_NAME = re.compile(r"\b(\w+_limit)\b")
_MAX_BODY_CHARS = 300


def describe_model_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """Return a one-line description of a provider exception, secrets redacted.

    Args:
        exc: Any exception raised while talking to a model; pydantic-ai's
            `ModelHTTPError` gives the model, status and a cut body.
        secrets: Values to redact besides the patterns of `redact_secrets`
            (such as the keys of the environment a model was built from).

    Returns:
        Such as `"model 'gpt-4o' answered HTTP 429: {...}"`.
    """
    from pydantic_ai.exceptions import (
        ModelAPIError,
        ModelHTTPError,
        ModelRequestTimeout,
        UnexpectedModelBehavior,
    )

    if isinstance(exc, ModelRequestTimeout):
        text = (
            f"model {exc.model_name!r} did not finish its answer within the deadline of "
            f"{exc.timeout:g} s (raise it with --timeout or PlannerOptions.timeout_s)"
        )
    elif isinstance(exc, ModelHTTPError):
        body = redact_secrets(str(exc.body), secrets)  # before cutting: a cut key is no match
        if len(body) > _MAX_BODY_CHARS:
            body = body[:_MAX_BODY_CHARS] + "…"
        text = f"model {exc.model_name!r} answered HTTP {exc.status_code}: {body}"
    elif isinstance(exc, ModelAPIError):
        text = f"model {exc.model_name!r} failed: {type(exc).__name__}: {exc}"
    elif isinstance(exc, UnexpectedModelBehavior):
        text = f"a model gave an answer that could not be read: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact_secrets(" ".join(text.split()), secrets)


@contextmanager
def model_errors(secrets: Iterable[str] = ()) -> Iterator[None]:
    """Turn pydantic-ai's exceptions into `ModelError` and its children.

    Every message is redacted with `redact_secrets`.

    Args:
        secrets: Values to redact besides the patterns of `redact_secrets`.

    Yields:
        Nothing; wrap the code that calls the model.

    Raises:
        ModelLimitError: A usage limit was reached (`UsageLimitExceeded`);
            `.limit` names it, such as `"request_limit"`.
        ModelConfigError: pydantic-ai refused the configuration (`UserError`).
        ModelError: Every model failed (`FallbackExceptionGroup`, one clause
            per model), a provider error (`ModelAPIError`), or a response
            the agent could not use (`UnexpectedModelBehavior`: an answer
            that is not the provider's format, such as an HTML page, or a
            plan still invalid after the repairs).
    """
    from pydantic_ai.exceptions import (
        FallbackExceptionGroup,
        ModelAPIError,
        UnexpectedModelBehavior,
        UsageLimitExceeded,
        UserError,
    )

    def clean(text: str) -> str:
        return redact_secrets(text, secrets)

    try:
        yield
    except ModelError:
        raise
    except UsageLimitExceeded as exc:
        match = _LIMIT_NAME.search(str(exc))
        limit = match.group(1) if match else "usage_limit"
        raise ModelLimitError(
            clean(
                f"The model stopped at a usage limit: {exc}. Raise the limit or simplify the goal."
            ),
            limit=limit,
        ) from exc
    except FallbackExceptionGroup as exc:
        parts = "; ".join(describe_model_exception(e, secrets) for e in exc.exceptions)
        raise ModelError(
            f"All {len(exc.exceptions)} models failed: {parts}. "
            "Check the keys and endpoints, or add a --fallback model."
        ) from exc
    except ModelAPIError as exc:
        raise ModelError(
            f"The model provider failed: {describe_model_exception(exc, secrets)}. "
            "Check the key and endpoint, or add a --fallback model."
        ) from exc
    except UnexpectedModelBehavior as exc:
        raise ModelError(clean(f"The model's answer could not be used: {exc}")) from exc
    except UserError as exc:
        raise ModelConfigError(clean(f"The model is misconfigured: {exc}")) from exc
