"""The applier of the code agent: one atomic batch, then the monitor, repairs and the report.

An accepted patch becomes live-bridge operations applied together
(`LiveClient.apply`); the changed cells and their descendants are read back
and classified (`monitor.classify`); certain repairs follow (a missing alias
import; a package install once approved); the facts of the errors left are
gathered and the same-error and fix limits enforced; the report is the next
turn's prompt. Every turn that changed the notebook becomes a `Checkpoint`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from marimo_engine.agents.code import _prompts
from marimo_engine.agents.code._run import CodeRun, StopCode, cell_label, ops_text
from marimo_engine.agents.code.checkpoints import Checkpoint, snapshot
from marimo_engine.agents.code.checks import ALIASES, free_cell_name
from marimo_engine.agents.code.events import ApprovalRequest, CodeEventType
from marimo_engine.agents.code.monitor import (
    CellError,
    ErrorClass,
    classify,
    defined_names,
    gather_facts,
    package_for,
    timeout_error,
)
from marimo_engine.agents.code.patch import CellEdit, NewCell, Patch
from marimo_engine.errors import (
    LiveError,
    LiveKernelError,
    LiveTimeoutError,
    PersonCellError,
    StaleCellError,
)

if TYPE_CHECKING:
    from marimo_engine.agents.code.agent import CodeOptions
    from marimo_engine.agents.code.events import ApprovalDecision
    from marimo_engine.live.protocol import CellInfo

__all__ = ["Applier"]


class Applier:
    """What `CodeAgent` does with an accepted patch (a mixin)."""

    options: CodeOptions

    if TYPE_CHECKING:  # provided by `Gate`, the other half of `CodeAgent`

        async def _approval(self, state: CodeRun, request: ApprovalRequest) -> ApprovalDecision: ...

    async def _apply(self, state: CodeRun) -> str:
        """Apply the accepted patch, monitor its cells, repair; return the next prompt."""
        from marimo_engine.live.protocol import CreateCell, DeleteCell, EditCell

        assert state.accepted is not None
        patch, before, findings = state.accepted
        # The person's cells the policy let through (allowed, or approved by a person).
        allowed = {
            f.cell for f in findings if f.rule in ("edit_foreign_cell", "delete_foreign_cell")
        }
        ops: list[Any] = []
        for op in patch.ops:
            if isinstance(op, NewCell):
                ops.append(CreateCell(code=op.code, name=op.name, after=op.after))
            elif isinstance(op, CellEdit):
                ops.append(
                    EditCell(
                        target=op.target,
                        code=op.code,
                        name=op.name,
                        allow_person_cell=op.target in allowed,
                    )
                )
            else:
                ops.append(DeleteCell(target=op.target, allow_person_cell=op.target in allowed))
        client = state.client
        timed_out = False
        try:
            batch = await client.apply(ops, timeout_s=self.options.run_timeout_s)
            changed_ids = [
                c.cell_id for c in batch.changes if c.op in ("create", "edit") and c.cell_id
            ]
        except StaleCellError as exc:
            state.record("patch_applied", applied=False, error=str(exc))
            cells = await client.cells()
            return f"The patch was not applied: {exc}\nThe notebook now:\n" + _prompts.cells_text(
                cells, max_chars=self.options.max_context_chars // 2
            )
        except PersonCellError as exc:
            state.record("patch_applied", applied=False, error=str(exc))
            return f"The patch was not applied: {exc}\nPut the change in a new cell instead."
        except LiveKernelError as exc:
            state.record("patch_applied", applied=False, error=str(exc))
            self._reject(state, f"marimo refused the patch: {exc}", [str(exc)])
            return f"marimo refused the patch, nothing changed: {exc}"
        except LiveTimeoutError:
            timed_out = True
            changed_ids = []
        after = await client.cells()
        old_ids = {c.id for c in before}
        created = [c.id for c in after if c.id not in old_ids]
        written = set(changed_ids) | set(created)
        state.agent_written.update({c.id: c.code for c in after if c.id in written})
        if timed_out:
            old = {c.id: c.code for c in before}
            changed_ids = created + [c.id for c in after if c.id in old and old[c.id] != c.code]
        state.touched.update(changed_ids)
        state.record("patch_applied", applied=True, cells=changed_ids, timed_out=timed_out)
        state.emit(
            CodeEventType.APPLIED,
            f"Applied: {ops_text(patch)}" + (" (interrupted: time limit)" if timed_out else ""),
            cells=[cell_label(after, i) for i in changed_ids],
        )
        errors, after = await self._monitor(state, changed_ids, after, timed_out=timed_out)
        checkpoint = Checkpoint(
            turn=state.turn,
            run_id=state.run_id,
            goal=state.goal,
            summary=patch.summary or ops_text(patch),
            before=snapshot(before),
            after=snapshot(after),
        )
        if checkpoint.changed:
            state.checkpoints.append(checkpoint)
            if state.memory is not None:
                state.memory.checkpoints.append(checkpoint)
                state.memory.save()
        return await self._report(state, patch, changed_ids, errors, after)

    async def _monitor(
        self, state: CodeRun, changed_ids: list[str], after: list[CellInfo], *, timed_out: bool
    ) -> tuple[list[CellError], list[CellInfo]]:
        """Classify errors of the changed cells and their descendants; make certain repairs."""
        client = state.client
        for _ in range(3):  # each repair re-reads the notebook; bounded
            affected = await self._affected(state, changed_ids)
            names = {c.id: c.name for c in after}
            errors: list[CellError] = []
            for cell in after:
                if cell.id not in affected:
                    continue
                if (
                    timed_out
                    and cell.id in changed_ids
                    and cell.status
                    in (
                        "interrupted",
                        "running",
                        "queued",
                        "cancelled",
                    )
                ):
                    errors.append(
                        timeout_error(cell.id, cell.name, cell.code, self.options.run_timeout_s)
                    )
                    continue
                error = classify(cell, names)
                if error is not None:
                    errors.append(error)
            repaired = await self._runtime_repairs(state, errors, after)
            if not repaired:
                return errors, after
            after = await client.cells()
            timed_out = False
        return errors, after

    async def _affected(self, state: CodeRun, changed_ids: list[str]) -> set[str]:
        affected = set(changed_ids)
        try:
            graph = await state.client.graph()
        except LiveError:
            return affected
        for node in graph.cells:
            if node.cell_id in changed_ids:
                affected.update(node.descendants)
        return affected

    async def _runtime_repairs(
        self, state: CodeRun, errors: list[CellError], cells: list[CellInfo]
    ) -> bool:
        """Certain repairs after a run: a missing alias import, an approved package install."""
        from marimo_engine.live.protocol import CreateCell, RunCell

        client = state.client
        aliases = sorted(
            {
                e.subject
                for e in errors
                if e.error_class is ErrorClass.UNDEFINED_NAME and e.subject in ALIASES
            }
        )
        defined = set()
        for cell in cells:
            defined |= defined_names(cell.code)
        aliases = [a for a in aliases if a not in defined]
        if aliases:
            code = "\n".join(ALIASES[a] for a in aliases)
            name = free_cell_name(cells, "imports")
            batch = await client.apply(
                [CreateCell(code=code, name=name)], timeout_s=self.options.run_timeout_s
            )
            state.agent_written.update({cell_id: code for cell_id in batch.cell_ids})
            detail = f"added a cell {name!r}: {code.replace(chr(10), '; ')}"
            state.repairs.append(
                {"turn": state.turn, "kind": "missing_import", "cell": name, "detail": detail}
            )
            state.record("repair", repair="missing_import", cell=name, detail=detail)
            state.emit(CodeEventType.REPAIR, f"Repaired: {detail}", cells=[name])
            return True
        missing = [e for e in errors if e.error_class is ErrorClass.MISSING_MODULE and e.subject]
        repaired = False
        tried: set[str] = set()
        for error in missing:
            assert error.subject is not None
            package = package_for(error.subject)
            if package in tried:
                continue
            tried.add(package)
            request = ApprovalRequest(
                kind="install",
                goal=state.goal,
                turn=state.turn,
                package=package,
                module=error.subject,
            )
            decision = await self._approval(state, request)
            if not decision.approve:
                error.facts["install"] = f"refused: {decision.note or 'a person said no'}"
                continue
            ok, log = await self._install(state, package)
            state.record("install", package=package, ok=ok, log=log[-2000:])
            state.emit(
                CodeEventType.INSTALL,
                f"Installed {package}" if ok else f"Install of {package} failed",
                data={"package": package, "ok": ok},
            )
            if not ok:
                error.facts["install"] = f"failed: {log.strip()[-400:]}"
                continue
            await client.apply(
                [RunCell(target=error.cell_id)], timeout_s=self.options.run_timeout_s
            )
            state.repairs.append(
                {
                    "turn": state.turn,
                    "kind": "install",
                    "cell": error.cell_name,
                    "detail": f"installed {package}",
                }
            )
            repaired = True
        return repaired

    async def _install(self, state: CodeRun, package: str) -> tuple[bool, str]:
        """Install a package into the kernel's Python (uv if present, else pip)."""
        import json as _json

        args = _json.dumps([*self.options.install_args, package])
        code = (
            "import importlib as _me_il, json as _me_json, shutil as _me_sh, "
            "subprocess as _me_sp, sys as _me_sys\n"
            f"_me_args = _me_json.loads({args!r})\n"
            "_me_uv = _me_sh.which('uv')\n"
            "_me_cmd = ([_me_uv, 'pip', 'install', '--python', _me_sys.executable] if _me_uv "
            "else [_me_sys.executable, '-m', 'pip', 'install']) + _me_args\n"
            "_me_p = _me_sp.run(_me_cmd, capture_output=True, text=True, timeout=600)\n"
            "_me_il.invalidate_caches()\n"
            "print(_me_json.dumps({'rc': _me_p.returncode, 'log': (_me_p.stdout + _me_p.stderr)"
            "[-3000:]}))\n"
        )
        try:
            result = await state.client.execute(code, timeout_s=max(self.options.run_timeout_s, 60))
        except LiveError as exc:
            return False, str(exc)
        try:
            reply = _json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return False, result.error or result.stdout
        return reply.get("rc") == 0, str(reply.get("log", ""))

    async def _report(
        self,
        state: CodeRun,
        patch: Patch,
        changed_ids: list[str],
        errors: list[CellError],
        cells: list[CellInfo],
    ) -> str:
        """Gather facts, enforce the same-error and fix limits, and write the next prompt."""
        for error in errors:
            await gather_facts(
                error,
                state.client,
                cells=cells,
                data_columns=state.data_columns,
                limits=self.options.limits_text,
            )
            state.record("cell_error", **error.to_json())
            state.emit(
                CodeEventType.CELL_ERROR,
                error.report().splitlines()[0],
                cells=[error.cell_name or error.cell_id],
                errors=[error.to_json()],
            )
        edited_failing = [op.target for op in patch.ops if isinstance(op, CellEdit)]
        by_key = {c.id: c.id for c in cells} | {c.name: c.id for c in cells if c.name}
        for target in edited_failing:
            cell_id = by_key.get(target)
            if cell_id is not None and cell_id in state.last_errors:
                state.fixes[cell_id] = state.fixes.get(cell_id, 0) + 1
        current = {e.cell_id: e for e in errors}
        for cell_id, error in current.items():
            previous = state.last_errors.get(cell_id)
            if previous is not None and previous.signature == error.signature:
                state.last_errors = current
                raise StopCode(
                    f"the same error twice in a row on cell {error.label}: {error.message}; "
                    "this line of attack is stopped",
                    error=error.report(),
                )
            if state.fixes.get(cell_id, 0) >= self.options.max_fixes_per_cell and error:
                state.last_errors = current
                raise StopCode(
                    f"cell {error.label} still fails after {state.fixes[cell_id]} fix(es): "
                    f"{error.message}",
                    error=error.report(),
                )
        state.last_errors = current
        lines = [f"Turn {state.turn} applied: {ops_text(patch)}."]
        shown = set(changed_ids) | set(current)
        for cell in cells:
            if cell.id not in shown or cell.id in current:
                continue
            output = (cell.output or "").strip()
            console = cell.console.strip()
            text = f"- cell {cell.name or cell.id} ran ({cell.status or 'idle'})"
            if output:
                text += f"; output: {output[:800]}"
            if console:
                text += f"; console: {console[:400]}"
            lines.append(text)
        for error in errors:
            lines.append(error.report())
        if not errors:
            lines.append("Every cell you changed ran without error. Continue, or finish.")
        return "\n".join(lines)
