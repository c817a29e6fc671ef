"""The gate of the code agent: checks, policy and approvals, run inside the model turn.

A patch the model writes is checked (`checks.check_patch`), scanned by the
policy (`policy.scan_code`, plus deleting cells the agent did not create),
and, for what the policy asks about, decided by `CodeOptions.approve` or a
person (`on_intervention`). A refusal raises pydantic-ai's `ModelRetry`, so
the reason goes back to the model as the answer to its tool call.
"""

from __future__ import annotations

import inspect
import time
from typing import TYPE_CHECKING

from marimo_engine.agents.code import _prompts
from marimo_engine.agents.code._run import CodeRun, op_cells, ops_text
from marimo_engine.agents.code.checks import check_patch
from marimo_engine.agents.code.events import ApprovalDecision, ApprovalRequest, CodeEventType
from marimo_engine.agents.code.patch import CellDeletion, CellEdit, Finish, NewCell, Patch
from marimo_engine.agents.code.policy import Policy, PolicyFinding, scan_code
from marimo_engine.errors import UsageError

if TYPE_CHECKING:
    from marimo_engine.agents.code.agent import CodeOptions, InterventionCallback
    from marimo_engine.live.protocol import CellInfo

__all__ = ["Gate"]


class Gate:
    """What `CodeAgent` does between the model's answer and the notebook (a mixin)."""

    options: CodeOptions
    on_intervention: InterventionCallback | None

    async def _validate(self, state: CodeRun, output: Patch | Finish) -> Patch | Finish:
        from pydantic_ai import ModelRetry

        if isinstance(output, Finish):
            return await self._validate_finish(state, output)
        cells = await state.client.cells()
        state.record("patch_proposed", patch=output.model_dump(mode="json"))
        state.emit(
            CodeEventType.PATCH_PROPOSED,
            f"Patch: {ops_text(output)}" + (f" ({output.summary})" if output.summary else ""),
            cells=op_cells(output),
            data={"patch": output.model_dump(mode="json")},
        )
        outcome = check_patch(cells, output)
        state.record(
            "patch_checked",
            ok=outcome.ok,
            problems=[p.describe() for p in outcome.problems],
            repairs=[r.detail for r in outcome.repairs],
        )
        if not outcome.ok:
            text = _prompts.problems_text(outcome.problems)
            self._reject(state, text, [p.describe() for p in outcome.problems])
            raise ModelRetry(text)
        for repair in outcome.repairs:
            state.repairs.append(
                {
                    "turn": state.turn,
                    "kind": repair.kind,
                    "cell": repair.cell,
                    "detail": repair.detail,
                }
            )
            state.record("repair", repair=repair.kind, cell=repair.cell, detail=repair.detail)
            state.emit(
                CodeEventType.REPAIR,
                f"Repaired {repair.cell!r}: {repair.detail}",
                cells=[repair.cell],
            )
        patch = outcome.patch
        findings = self._scan(state, patch, cells)
        denied = [f for f in findings if f.action == "deny"]
        asked = [f for f in findings if f.action == "ask"]
        if denied:
            text = _prompts.refusal_text(denied, "", by_person=False)
            self._reject(state, text, [f.describe() for f in denied], remember=True)
            raise ModelRetry(text)
        if asked:
            request = ApprovalRequest(
                kind="policy", goal=state.goal, turn=state.turn, findings=tuple(asked), patch=patch
            )
            decision = await self._approval(state, request)
            if not decision.approve:
                text = _prompts.refusal_text(asked, decision.note, by_person=True)
                self._reject(state, text, [f.describe() for f in asked], remember=True)
                raise ModelRetry(text)
        state.accepted = (patch, cells, findings)
        return output

    async def _validate_finish(self, state: CodeRun, output: Finish) -> Finish:
        from pydantic_ai import ModelRetry

        cells = await state.client.cells()
        known = {c.id: c for c in cells} | {c.name: c for c in cells if c.name}
        missing = [name for name in output.cells if name not in known]
        failing = [
            c.name or c.id
            for c in cells
            if c.id in state.touched and (c.errors or c.status in ("exception", "marimo-error"))
        ]
        if missing or failing:
            parts = []
            if missing:
                parts.append("no such cell(s): " + ", ".join(missing))
            if failing:
                parts.append("your cells still fail: " + ", ".join(failing))
            text = "Not finished: " + "; ".join(parts) + ". Fix them, then finish."
            self._reject(state, text, parts)
            raise ModelRetry(text)
        return output

    def _reject(
        self, state: CodeRun, text: str, reasons: list[str], *, remember: bool = False
    ) -> None:
        state.rejections += 1
        state.record("decision", decision="reject", reasons=reasons)
        state.emit(CodeEventType.PATCH_REJECTED, "Refused: " + "; ".join(reasons)[:300])
        if remember and state.memory is not None:
            state.memory.rejected.append(
                {"ts": time.time(), "goal": state.goal, "reason": "; ".join(reasons)[:500]}
            )

    def _scan(self, state: CodeRun, patch: Patch, cells: list[CellInfo]) -> list[PolicyFinding]:
        policy = self.options.policy
        if policy.workdir is None:
            policy = Policy(actions=policy.actions, workdir=state.workdir)
        findings: list[PolicyFinding] = []
        by_key = {c.id: c for c in cells} | {c.name: c for c in cells if c.name}
        # Names a cell reads may be defined in any other cell (`import subprocess as sp`
        # approved earlier): the policy resolves them against the notebook after the patch.
        replaced = {
            by_key[op.target].id
            for op in patch.ops
            if isinstance(op, (CellEdit, CellDeletion)) and op.target in by_key
        }
        context = [c.code for c in cells if c.id not in replaced] + [
            op.code for op in patch.ops if isinstance(op, (NewCell, CellEdit))
        ]
        for op in patch.ops:
            if isinstance(op, (NewCell, CellEdit)):
                label = op.name if isinstance(op, NewCell) else op.target
                findings.extend(scan_code(op.code, label or "", policy, context))
            if isinstance(op, (CellEdit, CellDeletion)):
                cell = by_key.get(op.target)
                if cell is None or state.agent_written.get(cell.id) == cell.code:
                    continue  # a cell the agent wrote (its current code): no one to ask
                if not cell.code.strip() and isinstance(op, CellEdit):
                    continue  # an empty cell holds nothing of the person's
                rule = "edit_foreign_cell" if isinstance(op, CellEdit) else "delete_foreign_cell"
                verb = "edits" if isinstance(op, CellEdit) else "deletes"
                findings.append(
                    PolicyFinding(
                        rule,
                        op.target,
                        0,
                        f"{verb} a cell whose code the agent did not write (the person's)",
                        policy.action(rule),
                    )
                )
        return findings

    async def _approval(self, state: CodeRun, request: ApprovalRequest) -> ApprovalDecision:
        mode = self.options.approve
        if mode == "auto":
            decision = ApprovalDecision(True, "approved automatically (--approve auto)")
        elif mode == "deny" or self.on_intervention is None:
            why = "--approve deny" if mode == "deny" else "no one to ask (no on_intervention)"
            decision = ApprovalDecision(False, f"refused: {why}")
        else:
            if state.show is not None:  # the patch's events come before the question
                await state.show()
            answer = self.on_intervention(request)
            if inspect.isawaitable(answer):
                answer = await answer
            if isinstance(answer, ApprovalDecision):
                decision = answer
            elif isinstance(answer, bool) or answer is None:
                decision = ApprovalDecision(bool(answer), "" if answer else "refused by a person")
            else:
                raise UsageError(
                    f"on_intervention returned {answer!r}; return an ApprovalDecision or a bool."
                )
        state.record(
            "approval",
            request=request.describe(),
            approve=decision.approve,
            note=decision.note,
            mode=mode,
        )
        state.emit(
            CodeEventType.APPROVAL,
            ("Approved: " if decision.approve else "Refused: ") + request.describe(),
            data={"kind": request.kind, "approve": decision.approve, "note": decision.note},
        )
        if state.memory is not None:
            state.memory.decisions.append(
                {
                    "ts": time.time(),
                    "goal": state.goal,
                    "decision": f"{'approved' if decision.approve else 'refused'}: "
                    f"{request.describe()} {decision.note}".strip(),
                }
            )
        return decision
