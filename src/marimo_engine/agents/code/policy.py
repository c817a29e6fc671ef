"""A static policy on the code a patch would add: which imports and calls need a person.

Each rule finds call sites in a cell's syntax tree and has an action:
`"allow"` (go ahead), `"ask"` (a person decides, through the agent's
`on_intervention` callback or the CLI's `--approve ask` prompt) or
`"deny"` (the patch goes back to the model with the reason).

This is a review aid, not a sandbox: Python code can reach anything it
wants through indirection the syntax tree does not show (smolagents
CVE-2025-5120 and CVE-2025-9959 are what happens when a Python-level
filter is trusted as one). Isolation is `--sandbox` (an OS-level sandbox,
`sandbox.py`); on a person's own session, approvals are the control.

Rules (default action):

- `subprocess` (ask): `subprocess`, `os.system`, `os.popen`, `os.exec*`,
  `os.spawn*`, `pty`, `asyncio.create_subprocess_*`.
- `package_install` (ask): `pip`/`uv`/`conda` install commands, `micropip.install`.
- `network` (ask): `socket`, `requests`, `httpx`, `urllib.request`, `urllib3`,
  `aiohttp`, `http.client`, `ftplib`, `smtplib`, `paramiko`, `websockets`.
- `write_outside` (deny): a write, removal or move whose literal path is
  outside the working directory (absolute elsewhere, `..`, `~`).
- `write_unknown` (ask): a write whose path is computed at run time.
- `dynamic_code` (ask): `eval`, `exec`, `compile`, `__import__`, `importlib.import_module`.
- `edit_foreign_cell` (ask): editing a cell whose current code the agent did
  not write (the person's; the live bridge refuses it unless allowed, since
  marimo cannot tell that someone is typing in it).
- `delete_foreign_cell` (ask): deleting a cell whose current code the agent
  did not write.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from marimo_engine.errors import UsageError

__all__ = ["DEFAULT_ACTIONS", "Action", "Policy", "PolicyFinding", "scan_code"]

Action = Literal["allow", "ask", "deny"]

DEFAULT_ACTIONS: dict[str, Action] = {
    "subprocess": "ask",
    "package_install": "ask",
    "network": "ask",
    "write_outside": "deny",
    "write_unknown": "ask",
    "dynamic_code": "ask",
    "edit_foreign_cell": "ask",
    "delete_foreign_cell": "ask",
}
"""Each rule's action unless the policy says otherwise."""

_SUBPROCESS_MODULES = {"subprocess", "pty", "pexpect", "sh", "plumbum"}
_NETWORK_MODULES = {
    "socket",
    "requests",
    "httpx",
    "urllib.request",
    "urllib3",
    "aiohttp",
    "http.client",
    "ftplib",
    "smtplib",
    "paramiko",
    "websockets",
    "websocket",
    "telnetlib",
    "pycurl",
}
_OS_PROCESS = {"system", "popen", "startfile", "posix_spawn", "posix_spawnp", "fork", "forkpty"}
_INSTALLERS = ("pip install", "pip3 install", "uv pip", "uv add", "conda install", "mamba install")
_PATH_WRITES = {
    "write_text",
    "write_bytes",
    "touch",
    "mkdir",
    "unlink",
    "rmdir",
    "rename",
    "replace",
    "symlink_to",
    "open",
}
_WRITE_METHODS = {
    "to_csv",
    "to_parquet",
    "to_json",
    "to_excel",
    "to_feather",
    "to_pickle",
    "to_hdf",
    "to_sql",
    "write_csv",
    "write_parquet",
    "write_json",
    "write_ipc",
    "savefig",
    "save",
}
_OS_WRITES = {
    "remove",
    "unlink",
    "rmdir",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "makedirs",
    "mkdir",
    "chmod",
    "chown",
    "truncate",
    "symlink",
    "link",
}
_SHUTIL_WRITES = {"rmtree", "move", "copy", "copy2", "copyfile", "copytree", "make_archive"}


@dataclass(frozen=True)
class PolicyFinding:
    """One thing in a cell that the policy has a rule for.

    Attributes:
        rule: The rule's name (see `DEFAULT_ACTIONS`).
        cell: The cell's name or id.
        line: Line number in the cell (1-based), or 0 for a cell operation.
        detail: What was found, one line.
        action: The policy's action for it.
    """

    rule: str
    cell: str
    line: int
    detail: str
    action: Action

    def describe(self) -> str:
        """One line: `cell 'x' line 3: detail (rule: action)`."""
        where = f" line {self.line}" if self.line else ""
        return f"cell {self.cell!r}{where}: {self.detail} [{self.rule}: {self.action}]"


@dataclass(frozen=True)
class Policy:
    """Actions per rule and the working directory writes are allowed in.

    Attributes:
        actions: Overrides of `DEFAULT_ACTIONS`, such as `{"network": "deny"}`.
        workdir: Writes inside this folder are allowed; `None` means the
            current directory when the policy is used.
    """

    actions: Mapping[str, Action] = field(default_factory=dict)
    workdir: Path | None = None

    def __post_init__(self) -> None:
        for rule, action in self.actions.items():
            if rule not in DEFAULT_ACTIONS:
                known = ", ".join(DEFAULT_ACTIONS)
                raise UsageError(f"Unknown policy rule {rule!r}; rules: {known}.")
            if action not in ("allow", "ask", "deny"):
                raise UsageError(
                    f"Policy action for {rule!r} is {action!r}; use 'allow', 'ask' or 'deny'."
                )

    def action(self, rule: str) -> Action:
        """Return the action for `rule`."""
        return self.actions.get(rule, DEFAULT_ACTIONS[rule])

    def root(self) -> Path:
        """The folder writes are allowed in (resolved)."""
        return (self.workdir or Path.cwd()).resolve()


def _dotted(node: ast.AST) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _literal_text(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant)) or None
    if isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] in ("Path", "PurePath"):
        return _literal_text(node.args[0]) if node.args else None
    return None


def _is_outside(path_text: str, root: Path) -> bool:
    expanded = os.path.expanduser(path_text)
    path = Path(expanded)
    resolved = (path if path.is_absolute() else root / path).resolve()
    try:
        resolved.relative_to(root)
    except ValueError:
        return True
    return False


def _mode_writes(call: ast.Call, position: int = 1) -> bool:
    mode: ast.AST | None = call.args[position] if len(call.args) > position else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    if mode is None:
        return False
    text = _literal_text(mode)
    return text is None or any(ch in text for ch in "wax+")


def scan_code(code: str, cell: str, policy: Policy) -> list[PolicyFinding]:
    """Return what the policy has rules for in one cell's code.

    Args:
        code: The cell's source (unparsable code gives no findings; syntax
            is checked elsewhere).
        cell: The cell's name, for the findings.
        policy: The policy (actions and working directory).

    Returns:
        The findings in source order, each with its rule's action.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    root = policy.root()
    found: list[PolicyFinding] = []

    def add(rule: str, node: ast.AST, detail: str) -> None:
        found.append(
            PolicyFinding(rule, cell, getattr(node, "lineno", 0), detail, policy.action(rule))
        )

    def check_module(module: str, node: ast.AST) -> None:
        top = module.split(".")[0]
        if top in _SUBPROCESS_MODULES:
            add("subprocess", node, f"imports {module!r} (runs other programs)")
        elif module in _NETWORK_MODULES or top in _NETWORK_MODULES:
            add("network", node, f"imports {module!r} (network access)")
        elif top in ("pip", "micropip"):
            add("package_install", node, f"imports {module!r} (installs packages)")

    def check_write_path(node: ast.AST, path_node: ast.AST | None, what: str) -> None:
        text = _literal_text(path_node) if path_node is not None else None
        if text is None:
            if path_node is not None:
                add("write_unknown", node, f"{what} to a path computed at run time")
            return
        if _is_outside(text, root):
            add("write_outside", node, f"{what} {text!r}, outside the working directory {root}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_module(alias.name, node)
        elif isinstance(node, ast.ImportFrom) and node.module:
            check_module(node.module, node)
            if node.module == "os":
                for alias in node.names:
                    if alias.name in _OS_PROCESS or alias.name.startswith(("exec", "spawn")):
                        add("subprocess", node, f"imports os.{alias.name} (runs other programs)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            lowered = " ".join(node.value.lower().split())
            if any(marker in lowered for marker in _INSTALLERS):
                add("package_install", node, f"a package install command: {node.value[:60]!r}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = node.func.attr if isinstance(node.func, ast.Attribute) else name
            if (
                name.startswith("os.")
                and (last in _OS_PROCESS or last.startswith(("exec", "spawn")))
            ) or name.startswith("asyncio.create_subprocess"):
                add("subprocess", node, f"calls {name}() (runs other programs)")
            elif name == "micropip.install":
                add("package_install", node, "calls micropip.install()")
            elif name in ("eval", "exec", "compile", "__import__", "importlib.import_module"):
                add("dynamic_code", node, f"calls {name}() (code the policy cannot read)")
            elif name == "open" and node.args and _mode_writes(node):
                check_write_path(node, node.args[0], "opens for writing")
            elif name.startswith("os.") and last in _OS_WRITES:
                check_write_path(node, node.args[0] if node.args else None, f"calls {name}() on")
            elif name.startswith("shutil.") and last in _SHUTIL_WRITES:
                target = node.args[-1] if node.args else None
                check_write_path(node, target, f"calls {name}() on")
            elif (
                isinstance(node.func, ast.Attribute)
                and last in _PATH_WRITES
                and isinstance(node.func.value, ast.Call)
                and _dotted(node.func.value.func).endswith("Path")
            ):
                owner = node.func.value
                if last != "open" or _mode_writes(node, 0):
                    check_write_path(node, owner.args[0] if owner.args else None, f".{last}() on")
            elif isinstance(node.func, ast.Attribute) and last in _WRITE_METHODS:
                if node.args:
                    check_write_path(node, node.args[0], f".{last}() to")
                else:
                    for kw in node.keywords:
                        if kw.arg in ("path", "path_or_buf", "file", "fname"):
                            check_write_path(node, kw.value, f".{last}() to")
    found.sort(key=lambda f: f.line)
    return found
