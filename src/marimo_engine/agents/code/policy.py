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
from collections.abc import Callable, Iterable, Mapping
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


_OPEN_CALLS = {"open", "builtins.open", "io.open", "codecs.open", "io.FileIO", "_io.open"}
_DYNAMIC_CALLS = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "importlib.import_module",
    "importlib.__import__",
    "runpy.run_path",
    "runpy.run_module",
}
_DYNAMIC_MODULES = {"ctypes", "cffi", "_ctypes"}
_DYNAMIC_ATTRS = {"__subclasses__", "__globals__", "__builtins__", "__code__", "__getattribute__"}
_OS_MODULES = {"os", "posix", "nt"}
_SENSITIVE_MODULES = _OS_MODULES | _SUBPROCESS_MODULES | {"shutil", "builtins", "sys", "io"}
_PATH_TYPES = {"Path", "PurePath", "PosixPath", "WindowsPath"}
_PATH_ALWAYS_WRITES = {"write_text", "write_bytes", "touch", "mkdir", "unlink", "rmdir"}
_PATH_LINKS = {"symlink_to", "hardlink_to"}
_OS_OPEN_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}


def _literal_str(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class _Names:
    """What the names of a cell (and of the notebook around it) stand for.

    Resolves a call's target to the dotted name the kernel will reach, through
    import aliases (`import subprocess as sp`, `from os import system as s`),
    plain assignments (`run = subprocess.run`), `getattr(os, "system")`,
    `sys.modules["os"]` and `__import__("os")`, so a rule is not escaped by
    renaming. Also follows `p = Path(...)` assignments, for path writes.
    """

    def __init__(self, trees: list[ast.AST]) -> None:
        self.aliases: dict[str, str] = {}
        self.values: dict[str, ast.AST] = {}
        assigns: list[tuple[str, ast.AST]] = []
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.asname:
                            self.aliases[alias.asname] = alias.name
                        else:
                            top = alias.name.split(".")[0]
                            self.aliases[top] = top
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    for alias in node.names:
                        if alias.name != "*":
                            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        if isinstance(target, ast.Name) and node.value is not None:
                            assigns.append((target.id, node.value))
        for name, value in assigns:
            self.values[name] = value
        for _ in range(3):  # chains such as `a = os; b = a.system`
            for name, value in assigns:
                resolved = self.qualified(value)
                if resolved and resolved != name:
                    self.aliases[name] = resolved

    def qualified(self, node: ast.AST, depth: int = 0) -> str:
        """The dotted name `node` reaches (`sp.run` -> `subprocess.run`), or `""`."""
        if depth > 20:
            return ""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value, depth + 1)
            return f"{base}.{node.attr}" if base else ""
        if isinstance(node, ast.Call):
            func = self.qualified(node.func, depth + 1)
            first = node.args[0] if node.args else None
            if func in ("getattr", "builtins.getattr") and len(node.args) >= 2:
                base = self.qualified(node.args[0], depth + 1)
                attr = _literal_str(node.args[1])
                return f"{base}.{attr}" if base and attr else ""
            if func in ("__import__", "importlib.import_module", "builtins.__import__"):
                return _literal_str(first) or ""
        if isinstance(node, ast.Subscript) and self.qualified(node.value) == "sys.modules":
            return _literal_str(node.slice) or ""
        return ""

    def path_text(self, node: ast.AST | None, depth: int = 0) -> tuple[bool, str | None]:
        """Whether `node` is a path expression, and its literal text when known.

        Knows `Path("a")`, `Path("a") / "b"`, `Path.home()`, `Path.cwd()`
        (as `"."`), names assigned one of those, and string literals.
        """
        if node is None or depth > 20:
            return False, None
        if isinstance(node, ast.Name) and node.id in self.values:
            return self.path_text(self.values[node.id], depth + 1)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            is_path, left = self.path_text(node.left, depth + 1)
            if not is_path:
                return False, None
            right = _literal_text(node.right)
            if left is None or right is None:
                return True, None
            return True, (right if right.startswith(("/", "~")) else f"{left}/{right}")
        if isinstance(node, ast.Call):
            func = self.qualified(node.func)
            last = func.split(".")[-1]
            if last in _PATH_TYPES:
                return True, (_literal_text(node.args[0]) if node.args else ".")
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("home", "cwd"):
                owner = self.qualified(node.func.value).split(".")[-1]
                if owner in _PATH_TYPES:
                    return True, "~" if node.func.attr == "home" else "."
            if isinstance(node.func, ast.Attribute) and node.func.attr in (
                "joinpath",
                "with_name",
                "with_suffix",
                "expanduser",
                "resolve",
                "absolute",
            ):
                is_path, _ = self.path_text(node.func.value, depth + 1)
                return is_path, None
        return False, _literal_text(node)


def _literal_text(node: ast.AST | None) -> str | None:
    """A path's literal text; for an f-string, its literal start (`""` when it has none)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        prefix = ""
        for value in node.values:
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                # The rest is computed: only an absolute, `~` or `..` start is certain.
                return prefix if prefix.startswith(("/", "~", "..")) else None
            prefix += value.value
        return prefix
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


def _argument(call: ast.Call, position: int, *names: str) -> ast.AST | None:
    for kw in call.keywords:
        if kw.arg in names:
            return kw.value
    return call.args[position] if len(call.args) > position else None


def _mode_writes(mode: ast.AST | None) -> bool:
    if mode is None:
        return False
    text = _literal_str(mode)
    return text is None or any(ch in text for ch in "wax+")


def _flags_write(flags: ast.AST | None) -> bool:
    if flags is None:
        return False
    names = {n.attr for n in ast.walk(flags) if isinstance(n, ast.Attribute)}
    names |= {n.id for n in ast.walk(flags) if isinstance(n, ast.Name)}
    if isinstance(flags, ast.Constant):
        return flags.value != 0
    return bool(names & _OS_OPEN_WRITE_FLAGS) or not names <= {"os", "O_RDONLY", "O_CLOEXEC"}


def _module_rule(module: str) -> tuple[str, str] | None:
    top = module.split(".")[0]
    if top in _SUBPROCESS_MODULES:
        return "subprocess", "runs other programs"
    if any(module == m or module.startswith(m + ".") for m in _NETWORK_MODULES):
        return "network", "network access"
    if top in ("pip", "micropip"):
        return "package_install", "installs packages"
    if top in _DYNAMIC_MODULES:
        return "dynamic_code", "calls native code the policy cannot read"
    return None


def scan_code(
    code: str, cell: str, policy: Policy, context: Iterable[str] = ()
) -> list[PolicyFinding]:
    """Return what the policy has rules for in one cell's code.

    Calls are judged by the name they reach, not the name written: import
    aliases, `from os import system`, `run = subprocess.run`,
    `getattr(os, "system")`, `sys.modules["os"]` and `__import__("os")` are
    followed, in the cell and in `context` (marimo cells read each other's
    globals, so `sp` may come from another cell's `import subprocess as sp`).

    Args:
        code: The cell's source (unparsable code gives no findings; syntax
            is checked elsewhere).
        cell: The cell's name, for the findings.
        policy: The policy (actions and working directory).
        context: The code of the notebook's other cells (only their imports
            and assignments are read, to resolve names; they give no findings).

    Returns:
        The findings in source order, each with its rule's action.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    others: list[ast.AST] = []
    for text in context:
        try:
            others.append(ast.parse(text))
        except SyntaxError:
            continue
    names = _Names([*others, tree])
    root = policy.root()
    found: list[PolicyFinding] = []
    reported: set[str] = set()  # dotted names whose import in this cell was reported

    def add(rule: str, node: ast.AST, detail: str) -> None:
        found.append(
            PolicyFinding(rule, cell, getattr(node, "lineno", 0), detail, policy.action(rule))
        )

    def check_import(module: str, node: ast.AST) -> bool:
        rule = _module_rule(module)
        if rule is None:
            return False
        add(rule[0], node, f"imports {module!r} ({rule[1]})")
        reported.add(module)
        return True

    def check_write_path(node: ast.AST, path_node: ast.AST | None, what: str) -> None:
        if path_node is None:
            return
        _, text = names.path_text(path_node)
        if text is None:
            add("write_unknown", node, f"{what} a path computed at run time")
        elif _is_outside(text, root):
            add("write_outside", node, f"{what} {text!r}, outside the working directory {root}")

    def is_reported(name: str) -> bool:
        return any(name == r or name.startswith(r + ".") for r in reported)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_import(alias.name, node)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if not check_import(node.module, node):
                for alias in node.names:  # `from urllib import request`
                    if check_import(f"{node.module}.{alias.name}", node):
                        break
            if node.module in _OS_MODULES:
                for alias in node.names:
                    if alias.name in _OS_PROCESS or alias.name.startswith(("exec", "spawn")):
                        add("subprocess", node, f"imports os.{alias.name} (runs other programs)")
                        reported.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            lowered = " ".join(node.value.lower().split())
            if any(marker in lowered for marker in _INSTALLERS):
                add("package_install", node, f"a package install command: {node.value[:60]!r}")
        elif isinstance(node, (ast.List, ast.Tuple)):
            words = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            joined = " ".join(str(w).lower() for w in words if isinstance(w, str))
            if len(words) > 1 and any(marker in joined for marker in _INSTALLERS):
                add("package_install", node, f"a package install command: {joined[:60]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in _DYNAMIC_ATTRS:
            add("dynamic_code", node, f"reads .{node.attr} (reaches code the policy cannot read)")
        elif isinstance(node, ast.Name) and node.id == "__builtins__":
            add("dynamic_code", node, "reads __builtins__ (reaches code the policy cannot read)")
        elif isinstance(node, ast.Call):
            _scan_call(node, names, add, check_write_path, is_reported)
    found.sort(key=lambda f: f.line)
    return found


def _scan_call(
    node: ast.Call,
    names: _Names,
    add: Callable[[str, ast.AST, str], None],
    check_write_path: Callable[[ast.AST, ast.AST | None, str], None],
    is_reported: Callable[[str], bool],
) -> None:
    """The findings of one call, by the name it reaches (see `scan_code`)."""
    name = names.qualified(node.func)
    written = _dotted(node.func) or name
    parts = name.split(".")
    top, last = parts[0], parts[-1]
    attr = node.func.attr if isinstance(node.func, ast.Attribute) else None
    shown = written if written == name else f"{written} ({name})"
    if name in ("getattr", "builtins.getattr") and len(node.args) >= 2:
        owner = names.qualified(node.args[0]).split(".")[0]
        if owner in _SENSITIVE_MODULES and _literal_str(node.args[1]) is None:
            add("dynamic_code", node, f"getattr() on {owner!r} with a computed name")
        return
    if (top in _OS_MODULES and len(parts) == 2) and (
        last in _OS_PROCESS or last.startswith(("exec", "spawn"))
    ):
        if not is_reported(name):
            add("subprocess", node, f"calls {shown}() (runs other programs)")
    elif name.startswith("asyncio.create_subprocess"):
        add("subprocess", node, f"calls {shown}() (runs other programs)")
    elif name == "micropip.install":
        if not is_reported(name):
            add("package_install", node, f"calls {shown}()")
    elif name in _DYNAMIC_CALLS or (top == "builtins" and last in ("eval", "exec", "compile")):
        add("dynamic_code", node, f"calls {shown}() (code the policy cannot read)")
    elif name in _OPEN_CALLS:
        if _mode_writes(_argument(node, 1, "mode")):
            check_write_path(node, _argument(node, 0, "file", "filename"), "opens for writing")
    elif top in _OS_MODULES and last == "open" and len(parts) == 2:
        if _flags_write(_argument(node, 1, "flags")):
            check_write_path(node, _argument(node, 0, "path"), f"calls {shown}() for writing on")
    elif top in _OS_MODULES and len(parts) == 2 and last in _OS_WRITES:
        check_write_path(node, _argument(node, 0, "path", "src", "name"), f"calls {shown}() on")
        if last in ("rename", "renames", "replace", "symlink", "link"):
            check_write_path(node, _argument(node, 1, "dst"), f"calls {shown}() to")
    elif top == "shutil" and last in _SHUTIL_WRITES:
        if last in ("rmtree", "make_archive"):
            check_write_path(node, _argument(node, 0, "path", "base_name"), f"calls {shown}() on")
        else:
            check_write_path(node, _argument(node, 1, "dst"), f"calls {shown}() to")
    elif _module_rule(name) is not None and len(parts) > 1:
        rule = _module_rule(name)
        assert rule is not None
        if not is_reported(name):
            add(rule[0], node, f"calls {shown}() ({rule[1]})")
    elif attr is not None:
        is_path, _ = names.path_text(node.func.value)
        if attr in _PATH_ALWAYS_WRITES or (is_path and attr in ("rename", "replace", "chmod")):
            if is_path:
                check_write_path(node, node.func.value, f".{attr}() on")
            else:
                add("write_unknown", node, f".{attr}() on a path computed at run time")
            if attr in ("rename", "replace"):
                check_write_path(node, _argument(node, 0, "target"), f".{attr}() to")
        elif attr in _PATH_LINKS:
            check_write_path(node, node.func.value, f".{attr}() at")
        elif attr == "open" and is_path:
            if _mode_writes(_argument(node, 0, "mode")):
                check_write_path(node, node.func.value, ".open() for writing on")
        elif attr in _WRITE_METHODS:
            target = _argument(node, 0, "path", "path_or_buf", "file", "fname")
            if target is not None:
                check_write_path(node, target, f".{attr}() to")


def _dotted(node: ast.AST) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""
