"""The `marimo-engine` command line: `main.py` parses, each command imports its work lazily."""
