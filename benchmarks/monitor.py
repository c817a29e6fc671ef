"""Benchmark of the code agent's execution monitor on a corpus of broken marimo cells.

Run with `uv run python benchmarks/monitor.py` (a few minutes on 2 cores).
Each case of `monitor_corpus.CASES` (62 cells across every error class,
written for this project) goes through what the agent does with a patch:
`check_patch` (syntax, marimo's graph rules, certain repairs); if it passes,
the cells are applied to a real headless marimo session, the broken cell is
read back, classified (`classify`) and its facts gathered (`gather_facts`).

Printed per class and in total, as a table, then one JSON object:
- classified: the share given the expected class (target 100 %);
- repaired: the share fixed without a model call (certain repairs);
- facts: among cases with a fact to carry, the share whose report carries it
  (target at least 90 %).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from monitor_corpus import CASES, Case

from marimo_engine.agents.code.checks import check_patch
from marimo_engine.agents.code.monitor import classify, gather_facts, timeout_error
from marimo_engine.agents.code.patch import NewCell, Patch
from marimo_engine.errors import LiveKernelError, LiveTimeoutError
from marimo_engine.live.protocol import CreateCell, DeleteCell
from marimo_engine.live.session import open_session

RUN_TIMEOUT_S = 3.0
LIMITS = "memory and CPU limits of the kernel"


async def run_case(client: Any, index: int, case: Case) -> dict[str, Any]:
    names = [f"c{index}_ctx{j}" for j in range(len(case.context))]
    target = f"c{index}_cell"
    cells = await client.cells()
    ops = [NewCell(name=n, code=c) for n, c in zip(names, case.context, strict=True)]
    patch = Patch(ops=[*ops, NewCell(name=target, code=case.code)])
    outcome = check_patch(cells, patch)
    result = {"case": case.name, "expected": case.expected, "got": None, "repaired": False,
              "fact": None}  # fmt: skip
    try:
        if outcome.problems:
            problem = outcome.problems[-1]
            result["got"] = {"syntax": "syntax", "graph": "graph"}.get(problem.kind, "other")
            result["report"] = "\n".join(p.describe() for p in outcome.problems)
            return result
        live_ops = [CreateCell(code=op.code, name=op.name) for op in outcome.patch.ops]
        created = [op.name for op in outcome.patch.ops]
        names = created
        try:
            await client.apply(live_ops, timeout_s=RUN_TIMEOUT_S)
            timed_out = False
        except LiveTimeoutError:
            timed_out = True
        except LiveKernelError as exc:
            result["got"] = "graph" if "defined" in str(exc) or "cycle" in str(exc) else "other"
            result["report"] = str(exc)
            return result
        after = await client.cells()
        by_name = {c.name: c for c in after}
        cell = by_name.get(outcome.patch.ops[-1].name)
        if cell is None:
            result["got"] = "missing"
            return result
        if timed_out:
            error = timeout_error(cell.id, cell.name, cell.code, RUN_TIMEOUT_S)
        else:
            error = classify(cell, {c.id: c.name for c in after})
        if error is None:
            if outcome.repairs:
                result["repaired"] = True
                kind = outcome.repairs[0].kind
                result["got"] = "graph" if kind == "private_name" else "undefined_name"
            else:
                result["got"] = "no error"
            result["report"] = "; ".join(r.detail for r in outcome.repairs)
            return result
        await gather_facts(error, client, cells=after, limits=LIMITS)
        result["got"] = error.error_class.value
        result["report"] = error.report()
        return result
    finally:
        if case.fact is not None:
            result["fact"] = case.fact in str(result.get("report", ""))
        current = {c.name: c.id for c in await client.cells()}
        doomed = [DeleteCell(target=current[n]) for n in names if n in current]
        if doomed:
            await client.apply(doomed)


async def main_async(quick: bool) -> dict[str, Any]:
    cases = CASES[::6] if quick else CASES
    with tempfile.TemporaryDirectory() as folder:
        os.environ.setdefault("XDG_STATE_HOME", str(Path(folder) / "state"))
        notebook = Path(folder) / "bench.py"
        with open_session(notebook, startup_timeout_s=120) as live:
            async with live.client() as client:
                results = [await run_case(client, i, case) for i, case in enumerate(cases)]
    return summarise(results)


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        by_class[r["expected"]].append(r)
    rows = []
    for name, items in [*sorted(by_class.items()), ("TOTAL", results)]:
        with_fact = [r for r in items if r["fact"] is not None]
        rows.append(
            {
                "class": name,
                "cases": len(items),
                "classified": sum(r["got"] == r["expected"] for r in items) / len(items),
                "repaired": sum(r["repaired"] for r in items) / len(items),
                "facts": (sum(bool(r["fact"]) for r in with_fact) / len(with_fact))
                if with_fact
                else None,
            }
        )
    return {"rows": rows, "misses": [r for r in results if r["got"] != r["expected"]
                                     or r["fact"] is False]}  # fmt: skip


def print_table(summary: dict[str, Any]) -> None:
    print(f"{'class':<16} {'cases':>5} {'classified':>11} {'repaired':>9} {'facts':>7}")
    for row in summary["rows"]:
        facts = "-" if row["facts"] is None else f"{row['facts']:.0%}"
        print(
            f"{row['class']:<16} {row['cases']:>5} {row['classified']:>11.0%} "
            f"{row['repaired']:>9.0%} {facts:>7}"
        )
    for miss in summary["misses"]:
        print(f"miss: {miss['case']}: expected {miss['expected']}, got {miss['got']}, "
              f"fact {miss['fact']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every sixth case only")
    args = parser.parse_args()
    summary = asyncio.run(main_async(args.quick))
    print_table(summary)
    print(json.dumps({"rows": summary["rows"]}))


if __name__ == "__main__":
    main()
