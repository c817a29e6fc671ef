"""Usage limits and the usage report of a run: tokens per model and cost in US dollars.

Costs come from genai-prices, the price table pydantic-ai ships with
(`ModelResponse.cost()`). A model it does not know is reported as unpriced
(`cost_usd=None`), never as zero. A budget in US dollars is checked after
every response against the known cost; a response that cannot be priced
while a budget is set stops the run, because the budget could no longer be
guaranteed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from marimo_engine.errors import ModelLimitError, UsageError

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.usage import UsageLimits

__all__ = [
    "ModelLimits",
    "ModelUsage",
    "UsageReport",
    "UsageTracker",
    "model_label",
    "response_cost_usd",
]


@dataclass(frozen=True)
class ModelLimits:
    """Limits on the model use of one agent run (all its plans, repairs and replans).

    Attributes:
        request_limit: Model responses allowed; `None` means no limit.
        input_tokens_limit: Input (prompt) tokens allowed in total; `None` means no limit.
        output_tokens_limit: Output (completion) tokens allowed in total; `None` means no limit.
        total_tokens_limit: Input plus output tokens allowed; `None` means no limit.
        budget_usd: US dollars allowed, by genai-prices' list prices; `None`
            means no budget. With a budget, every model must be priced.
    """

    request_limit: int | None = 20
    input_tokens_limit: int | None = None
    output_tokens_limit: int | None = None
    total_tokens_limit: int | None = None
    budget_usd: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "request_limit",
            "input_tokens_limit",
            "output_tokens_limit",
            "total_tokens_limit",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UsageError(
                    f"ModelLimits.{name} is {value!r}; use a positive integer or None."
                )
        if self.budget_usd is not None and not self.budget_usd > 0:
            raise UsageError(
                f"ModelLimits.budget_usd is {self.budget_usd!r}; use a positive number of "
                "US dollars or None."
            )

    def to_usage_limits(self) -> UsageLimits:
        """Return the pydantic-ai `UsageLimits` for the request and token limits.

        The budget is not included: pydantic-ai's `cost_limit` silently
        passes when a model is unpriced, so `UsageTracker` checks it instead.
        """
        from pydantic_ai.usage import UsageLimits

        return UsageLimits(
            request_limit=self.request_limit,
            input_tokens_limit=self.input_tokens_limit,
            output_tokens_limit=self.output_tokens_limit,
            total_tokens_limit=self.total_tokens_limit,
        )


@dataclass
class ModelUsage:
    """Usage of one model within a run.

    Attributes:
        model: `provider:name` as the provider answered, such as
            `"openai:gpt-4o-mini-2024-07-18"` (the name alone when the
            provider is unknown, as for pydantic-ai's `FunctionModel`).
        requests: Responses received from this model.
        input_tokens: Input (prompt) tokens, cached ones included.
        output_tokens: Output (completion) tokens.
        cost_usd: Cost in US dollars, or `None` when any of its responses
            could not be priced (unpriced, never zero).
        failed_attempts: Requests that failed and fell back to the next model.
    """

    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    failed_attempts: int = 0

    @property
    def is_priced(self) -> bool:
        """Whether `cost_usd` is known."""
        return self.cost_usd is not None

    def describe(self) -> str:
        """Return one line: `model: N requests, IN in / OUT out tokens, $COST` (or `unpriced`)."""
        noun = "request" if self.requests == 1 else "requests"
        cost = "unpriced" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        failed = f", {self.failed_attempts} failed" if self.failed_attempts else ""
        return (
            f"{self.model}: {self.requests} {noun}{failed}, {self.input_tokens:,} in / "
            f"{self.output_tokens:,} out tokens, {cost}"
        )


@dataclass
class UsageReport:
    """Usage of a run, per model, with totals.

    Attributes:
        models: One entry per model that answered or failed, in first-use order.
    """

    models: list[ModelUsage] = field(default_factory=list)

    @property
    def requests(self) -> int:
        """Responses received, all models together."""
        return sum(m.requests for m in self.models)

    @property
    def input_tokens(self) -> int:
        """Input tokens, all models together."""
        return sum(m.input_tokens for m in self.models)

    @property
    def output_tokens(self) -> int:
        """Output tokens, all models together."""
        return sum(m.output_tokens for m in self.models)

    @property
    def known_cost_usd(self) -> float:
        """US dollars of the priced models only (a lower bound when some are unpriced)."""
        return sum(m.cost_usd for m in self.models if m.cost_usd is not None)

    @property
    def cost_usd(self) -> float | None:
        """US dollars of the whole run, or `None` when any model with requests is unpriced."""
        if any(m.cost_usd is None and m.requests for m in self.models):
            return None
        return self.known_cost_usd

    @property
    def unpriced_models(self) -> list[str]:
        """Models with requests whose cost is unknown."""
        return [m.model for m in self.models if m.cost_usd is None and m.requests]

    def to_json(self) -> dict[str, Any]:
        """Return the report as plain JSON: per model, totals, and `cost_usd` or `"unpriced"`."""
        return {
            "models": [
                {
                    "model": m.model,
                    "requests": m.requests,
                    "failed_attempts": m.failed_attempts,
                    "input_tokens": m.input_tokens,
                    "output_tokens": m.output_tokens,
                    "cost_usd": "unpriced" if m.cost_usd is None else m.cost_usd,
                }
                for m in self.models
            ],
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": "unpriced" if self.cost_usd is None else self.cost_usd,
            "known_cost_usd": self.known_cost_usd,
            "unpriced_models": self.unpriced_models,
        }

    def describe(self) -> str:
        """Return one line per model and a total line, for people."""
        lines = [m.describe() for m in self.models]
        total = "unpriced" if self.cost_usd is None else f"${self.cost_usd:.6f}"
        if self.cost_usd is None and self.known_cost_usd:
            total = f"at least ${self.known_cost_usd:.6f} (some models unpriced)"
        lines.append(
            f"total: {self.requests} requests, {self.input_tokens:,} in / "
            f"{self.output_tokens:,} out tokens, {total}"
        )
        return "\n".join(lines)


def response_cost_usd(response: ModelResponse) -> float | None:
    """Return the cost of one model response in US dollars, or `None` when unpriced.

    Args:
        response: A pydantic-ai `ModelResponse` with `model_name`,
            `provider_name`, `provider_url` and `usage`.

    Returns:
        The cost pydantic-ai already filled in (`usage.cost`), else genai-prices'
        price; `None` for an unknown model or provider, or a response that
        omitted its usage.
    """
    if response.usage.cost is not None:
        return float(response.usage.cost)
    if not response.model_name or response.usage.unmeasured_requests:
        return None
    try:
        return float(response.cost().total_price)
    except (LookupError, ValueError, AssertionError):
        return None


def model_label(provider: str | None, model: str | None) -> str:
    """Return `provider:model`, or the model name alone when the provider is unknown.

    Args:
        provider: pydantic-ai's `provider_name` of a response, or `None`.
        model: The model name the provider reported, or `None`.

    Returns:
        Such as `"openai:gpt-4o-mini"`.
    """
    model = model or "unknown"
    return f"{provider}:{model}" if provider else model


class UsageTracker:
    """Collects model responses into a `UsageReport` and enforces the US dollar budget.

    Args:
        budget_usd: US dollars allowed; `None` means no budget.
    """

    def __init__(self, budget_usd: float | None = None) -> None:
        self.budget_usd = budget_usd
        self._by_model: dict[str, ModelUsage] = {}

    def _entry(self, model: str) -> ModelUsage:
        entry = self._by_model.get(model)
        if entry is None:
            entry = self._by_model[model] = ModelUsage(model=model)
        return entry

    def record(self, response: ModelResponse) -> ModelUsage:
        """Add one response (and the fallback attempts listed on it) to the report.

        Args:
            response: The response as received from the model.

        Returns:
            The usage entry of the model that answered.

        Raises:
            ModelLimitError: A budget is set and the known cost now exceeds it,
                or this response could not be priced (`limit="budget_usd"`).
        """
        for attempt in response.failed_attempts or ():
            self._entry(model_label(attempt.provider_name, attempt.model_name)).failed_attempts += 1
        name = model_label(response.provider_name, response.model_name)
        entry = self._entry(name)
        entry.requests += 1
        entry.input_tokens += response.usage.input_tokens
        entry.output_tokens += response.usage.output_tokens
        cost = response_cost_usd(response)
        entry.cost_usd = None if cost is None or entry.cost_usd is None else entry.cost_usd + cost
        self.check_budget(unpriced_model=name if cost is None else None)
        return entry

    def check_budget(self, *, unpriced_model: str | None = None) -> None:
        """Raise when the budget is spent or can no longer be guaranteed.

        Args:
            unpriced_model: A model whose latest response could not be priced.

        Raises:
            ModelLimitError: With `limit="budget_usd"`.
        """
        if self.budget_usd is None:
            return
        if unpriced_model is not None:
            raise ModelLimitError(
                f"Model {unpriced_model!r} cannot be priced, so the budget of "
                f"${self.budget_usd:g} cannot be enforced; use a priced model or drop the budget.",
                limit="budget_usd",
            )
        spent = self.report().known_cost_usd
        if spent > self.budget_usd:
            raise ModelLimitError(
                f"The budget of ${self.budget_usd:g} is spent (${spent:.6f} so far); "
                "raise the budget or simplify the goal.",
                limit="budget_usd",
            )

    def report(self) -> UsageReport:
        """Return the usage so far (a snapshot)."""
        return UsageReport(models=[ModelUsage(**vars(m)) for m in self._by_model.values()])
