"""Redact API keys and bearer tokens from text a provider sent, before it is shown or recorded.

A provider's error body can echo the key it was sent (a 401 from a proxy
saying `invalid key sk-...`, a gateway repeating the `Authorization`
header). Every such text passes through `redact_secrets` (or a `Redactor`,
the same rules compiled once for many texts) before it reaches an error
message, the terminal, stdout or the audit log: `model_errors()` redacts
the `ModelError` it raises, and `AuditLog.write` redacts every string of a
record.

What is redacted:

- the value after `Bearer ` (`Authorization: Bearer abc...`);
- key-shaped words: `sk-...` (OpenAI, Anthropic `sk-ant-...`), `gsk_...`
  (Groq), `AIza...` (Google), `xai-...`, `hf_...` (Hugging Face);
- the value of `api_key=...`, `"x-api-key": "..."`, `token: ...`,
  `secret=...`, `password=...` and similar pairs;
- the exact values of the environment variables whose names say they hold
  a secret (`*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`), and any
  `secrets` passed in; values shorter than `MIN_SECRET_CHARS` are left
  alone, as they would match ordinary words.

Each becomes `REDACTED`, so the rest of the message stays readable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

__all__ = ["MIN_SECRET_CHARS", "REDACTED", "Redactor", "redact_secrets", "secret_values"]

REDACTED = "[REDACTED]"
"""What a secret is replaced with."""

MIN_SECRET_CHARS = 8
"""Secrets shorter than this many characters are not searched for by value."""

_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{6,}=*")
_KEY_SHAPED = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{8,}|gsk_[A-Za-z0-9]{16,}|AIza[0-9A-Za-z_\-]{30,}"
    r"|xai-[A-Za-z0-9]{16,}|hf_[A-Za-z0-9]{16,})"
)
_KEY_VALUE = re.compile(
    r"(?i)((?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|token|secret|password)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&}\[\]]{8,})"
)
_SECRET_NAME = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD)")


def secret_values(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Return the values of the environment variables that hold secrets.

    Args:
        env: The environment; `None` means `os.environ`.

    Returns:
        The values of variables whose names contain `KEY`, `TOKEN`, `SECRET`
        or `PASSWORD` (any case), at least `MIN_SECRET_CHARS` long.
    """
    environ = os.environ if env is None else env
    return frozenset(
        value
        for name, value in environ.items()
        if _SECRET_NAME.search(name) and len(value) >= MIN_SECRET_CHARS
    )


class Redactor:
    """`redact_secrets` with its secret values gathered and compiled once, for many texts.

    The audit log makes one per file, as a record can hold thousands of strings.

    Args:
        secrets: Values to redact wherever they occur; shorter than
            `MIN_SECRET_CHARS` they are ignored.
        environ: Also redact the values of `secret_values()` (`os.environ`,
            as it is now).
    """

    def __init__(self, secrets: Iterable[str] = (), *, environ: bool = True) -> None:
        values = {s for s in secrets if len(s) >= MIN_SECRET_CHARS}
        if environ:
            values |= secret_values()
        # A longer secret first, in case one contains another.
        ordered = sorted(values, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        """Return `text` with every secret replaced by `REDACTED` (see `redact_secrets`)."""
        if len(text) < MIN_SECRET_CHARS:  # too short to hold any of them
            return text
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
        text = _KEY_SHAPED.sub(REDACTED, text)
        return _KEY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)


def redact_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with API keys, bearer tokens and known secret values replaced.

    Args:
        text: Text from or about a provider: an error body, a message, a record.
        secrets: Values to redact wherever they occur, besides those of
            `secret_values()` (`os.environ`); shorter than `MIN_SECRET_CHARS`
            they are ignored.

    Returns:
        The text with every secret replaced by `REDACTED` (see the module
        docs for the patterns); text without secrets comes back unchanged.
    """
    return Redactor(secrets)(text)
