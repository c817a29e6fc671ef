"""Secrets in provider text: one redaction function for messages and the audit log."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from marimo_engine.llm import redact_secrets, secret_values


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expected: str


CASES = [
    Case(
        "openai-401",
        "Incorrect API key provided: sk-proj-AbC123dEf456GhI789. You can find your API key at",
        "Incorrect API key provided: [REDACTED]. You can find your API key at",
    ),
    Case("anthropic-key", "key sk-ant-api03-abcdEFGH_1234-xyz", "key [REDACTED]"),
    Case(
        "bearer-header",
        "sent Authorization: Bearer eyJhbGciOi.J9x_y-z== to the proxy",
        "sent Authorization: Bearer [REDACTED] to the proxy",
    ),
    Case("bearer-lowercase", "bearer abcdef123456", "bearer [REDACTED]"),
    Case(
        "json-api-key",
        '{"api_key": "0123456789abcdef", "model": "m"}',
        '{"api_key": "[REDACTED]", "model": "m"}',
    ),
    Case(
        "query-key",
        "GET /v1/models?api-key=zzzzzzzzzzzz&x=1",
        "GET /v1/models?api-key=[REDACTED]&x=1",
    ),
    Case("x-api-key", "x-api-key: qwertyuiop123", "x-api-key: [REDACTED]"),
    Case("groq", "gsk_0123456789abcdefABCD", "[REDACTED]"),
    Case("google", "key=AIzaSyA-0123456789abcdefghijklmnopqrs", "key=[REDACTED]"),
    Case(
        "plain-text-untouched",
        "model 'gpt-4o' answered HTTP 429: Rate limit reached; max_tokens=4096, Bearer of news",
        "model 'gpt-4o' answered HTTP 429: Rate limit reached; max_tokens=4096, Bearer of news",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_redact_secrets(case: Case) -> None:
    assert redact_secrets(case.text) == case.expected
    assert redact_secrets(redact_secrets(case.text)) == case.expected  # stable


def test_known_secret_values_are_redacted_wherever_they_occur(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_GATEWAY_TOKEN", "opaque.value!42")
    monkeypatch.setenv("SHORT_KEY", "abc")  # too short to search for: would hit words
    text = "proxy said: token opaque.value!42 refused, abc"
    assert redact_secrets(text) == "proxy said: token [REDACTED] refused, abc"
    assert redact_secrets("x my-own-key-value y", ["my-own-key-value"]) == "x [REDACTED] y"
    assert "opaque.value!42" in secret_values()
    assert secret_values({"OPENAI_API_KEY": "k" * 12, "HOME": "/home/someone"}) == {"k" * 12}
