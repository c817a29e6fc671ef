"""Model strings, provider configuration errors and price lookup."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from marimo_engine.errors import ModelConfigError
from marimo_engine.llm import ModelSpec, build_model, describe_model, is_priced, parse_model_string


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expected: ModelSpec


PARSE_CASES = [
    Case("openai", "openai:gpt-4o-mini", ModelSpec("openai", "gpt-4o-mini")),
    Case("anthropic", "anthropic:claude-sonnet-4-5", ModelSpec("anthropic", "claude-sonnet-4-5")),
    Case("ollama-colon-in-name", "ollama:qwen2.5:7b", ModelSpec("ollama", "qwen2.5:7b")),
    Case("provider-case", "OpenAI:gpt-4o", ModelSpec("openai", "gpt-4o")),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=[c.id for c in PARSE_CASES])
def test_parse_model_string(case: Case) -> None:
    assert parse_model_string(case.text) == case.expected
    assert str(case.expected) == f"{case.expected.provider}:{case.expected.name}"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("gpt-4o", r"not of the form 'PROVIDER:NAME'.*'openai', 'anthropic', 'ollama'"),
        ("openai:", r"not of the form 'PROVIDER:NAME'"),
        ("gemini:pro", r"unknown provider 'gemini'; known providers: 'openai', 'anthropic'"),
    ],
)
def test_parse_model_string_rejects(text: str, match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        parse_model_string(text)


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (
            "openai:gpt-4o",
            r"^Model 'openai:gpt-4o' has no key or endpoint: set OPENAI_API_KEY, or OPENAI_BASE",
        ),
        (
            "anthropic:claude-sonnet-4-5",
            r"^Model 'anthropic:claude-sonnet-4-5' has no key: set ANTHROPIC_API_KEY",
        ),
        ("ollama:llama3.2", r"^Model 'ollama:llama3.2' has no endpoint: set OLLAMA_BASE_URL"),
    ],
)
def test_missing_configuration_names_the_variables(model: str, match: str) -> None:
    with pytest.raises(ModelConfigError, match=match) as info:
        build_model(model, env={})
    assert "\n" not in str(info.value)


def test_fallback_chain_is_described_in_order() -> None:
    env = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
    model = build_model("openai:gpt-4o-mini", ["anthropic:claude-sonnet-4-5"], env=env)
    assert describe_model(model) == "openai:gpt-4o-mini -> anthropic:claude-sonnet-4-5"


def test_sdk_retries_are_off_by_default() -> None:
    model = build_model("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "sk-test"})
    assert model.settings is not None
    assert model.settings.get("max_retries") == 0


def test_is_priced_uses_the_price_table() -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OLLAMA_BASE_URL": "http://127.0.0.1:9/v1"}
    assert is_priced(build_model("openai:gpt-4o-mini", env=env))
    assert not is_priced(build_model("openai:my-own-finetune-xyz", env=env))
    assert not is_priced(build_model("ollama:llama3.2", env=env))
    chain = build_model("openai:gpt-4o-mini", ["openai:my-own-finetune-xyz"], env=env)
    assert not is_priced(chain)


@pytest.mark.parametrize(
    ("base_url", "fixed"),
    [
        ("http://localhost:11434", "http://localhost:11434/v1"),
        ("http://localhost:11434/", "http://localhost:11434/v1"),
        ("https://proxy.example/ollama", "https://proxy.example/ollama/v1"),
    ],
)
def test_ollama_base_url_without_v1_says_what_to_add(base_url: str, fixed: str) -> None:
    with pytest.raises(ModelConfigError) as info:
        build_model("ollama:llama3.2", env={"OLLAMA_BASE_URL": base_url})
    assert str(info.value) == (
        f"Model 'ollama:llama3.2' needs OLLAMA_BASE_URL to end in '/v1' (Ollama's "
        f"OpenAI-compatible API), but it is {base_url!r}; set OLLAMA_BASE_URL={fixed}."
    )
    for good in (fixed, fixed + "/"):
        assert describe_model(build_model("ollama:llama3.2", env={"OLLAMA_BASE_URL": good}))


def test_timeout_is_a_whole_request_deadline() -> None:
    model = build_model("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "sk-test"}, timeout_s=7.5)
    assert model.settings is not None
    assert model.settings.get("request_timeout") == 7.5  # enforced by pydantic-ai, end to end
    assert model.settings.get("timeout") == 7.5
    with pytest.raises(ModelConfigError, match=r"timeout is 0 seconds; use a positive number"):
        build_model("openai:gpt-4o-mini", env={"OPENAI_API_KEY": "sk-test"}, timeout_s=0)
