"""The runs UI: a marimo app, served by `marimo-engine ui`, over the run journal (docs/ui.md).

- `runs_app.py`: the app itself, a marimo notebook (`marimo edit` opens it).
- `view.py`: what the app shows, from journal records: run rows, step
  states, outputs; `charts.py` the DAG (mermaid) and the timeline (Altair);
  `text.py` text from plans made safe for markdown.
- `actions.py`: what the app does: resume with a decision, re-run with
  changed arguments, propose a plan with the planner agent and run it, each
  through the same functions as the CLI (`engine.durable`) and in a
  background thread so that the page never waits on a run.
- `server.py`: marimo's own ASGI server (run mode, auth token on) on loopback.

Nothing heavy is imported here.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["APP_PATH"]

APP_PATH = Path(__file__).with_name("runs_app.py")
"""The app's notebook file, shipped in the package."""
