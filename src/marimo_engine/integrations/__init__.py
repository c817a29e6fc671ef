"""Hosts that put the engine inside other frameworks (each an optional extra).

- `speech`: a run in words for people listening: short sentences from
  events, paced so a listener can follow, questions for interventions and a
  spoken summary of the result. No dependency beyond the engine.
- `pipecat`: the engine as functions of a Pipecat voice bot's LLM
  (`pip install "marimo-engine[pipecat]"`, docs/pipecat.md).
"""

from __future__ import annotations

__all__: list[str] = []
