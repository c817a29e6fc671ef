import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="marimo-engine runs")


@app.cell
def _():
    # The runs UI of marimo-engine (docs/ui.md). `marimo-engine ui` serves this
    # notebook in run mode; `marimo edit` opens it to change it. What it shows
    # comes from `marimo_engine.ui.view`, what it does from `marimo_engine.ui.actions`.
    import json
    import time

    import marimo as mo

    from marimo_engine.engine.durable import Decision, list_runs
    from marimo_engine.errors import EngineError
    from marimo_engine.ui import actions, charts, text, view

    return Decision, EngineError, actions, charts, json, list_runs, mo, text, time, view


@app.cell
def _(actions):
    # The journal, tools and model `marimo-engine ui` was started with
    # ($MARIMO_ENGINE_JOURNAL and $MARIMO_ENGINE_UI); one journal connection
    # for the session.
    config = actions.UIConfig.from_env()
    journal = config.open_journal()
    return config, journal


@app.cell
def _(mo):
    # The page's state. `memo` holds the selected run id without making cells
    # depend on it (the table restores its selection from it when it redraws).
    get_rows, set_rows = mo.state([])
    get_selected, set_selected = mo.state(None)
    get_view, set_view = mo.state(None)
    get_pending, set_pending = mo.state(None)
    get_proposal, set_proposal = mo.state(None)
    memo = {"selected": None}

    def select(run_id):
        memo["selected"] = run_id
        set_selected(run_id)

    return (
        get_pending,
        get_proposal,
        get_rows,
        get_selected,
        get_view,
        memo,
        select,
        set_pending,
        set_proposal,
        set_rows,
        set_view,
    )


@app.cell
def _(mo):
    refresh = mo.ui.refresh(options=["1s", "2s", "5s", "10s"], default_interval="1s", label="live")
    return (refresh,)


@app.cell
def _(journal, mo, refresh):
    mo.hstack(
        [
            mo.md(f"# marimo-engine runs\n\njournal `{journal.location}`"),
            refresh,
        ],
        justify="space-between",
        align="center",
    )
    return


@app.cell
def _(
    get_pending,
    get_rows,
    get_selected,
    get_view,
    journal,
    list_runs,
    refresh,
    set_pending,
    set_rows,
    set_view,
    time,
    view,
):
    # Poll the journal on every tick; a state is set only when what it shows
    # changed, so the cells below redraw only then (a form being filled in
    # is left alone while nothing changes).
    _tick = refresh.value
    _now = time.time()
    _rows = view.run_rows(list_runs(journal, limit=200), _now)
    if _rows != get_rows():
        set_rows(_rows)
    _selected = get_selected()
    _view = view.read_view(journal, _selected, _now) if _selected else None
    if _view != get_view():
        set_view(_view)
    _pending = None
    if _view is not None and _view.pending is not None:
        _waiting = _view.step(str(_view.pending.get("step_id")))
        _pending = (_view.run_id, dict(_view.pending), _waiting.tool if _waiting else "")
    if _pending != get_pending():
        set_pending(_pending)
    return


@app.cell
def _(mo):
    status_filter = mo.ui.multiselect(
        options=["running", "waiting", "interrupted", "finished"], label="status"
    )
    verdict_filter = mo.ui.multiselect(
        options=["SUCCESS", "FAILURE", "INTERVENTION_NEEDED"], label="verdict"
    )
    plan_filter = mo.ui.text(placeholder="plan id contains", label="plan")
    return plan_filter, status_filter, verdict_filter


@app.cell
def _(get_rows, memo, mo, plan_filter, status_filter, verdict_filter, view):
    _needle = plan_filter.value.strip().lower()
    _rows = [
        r
        for r in get_rows()
        if (not status_filter.value or r["status"] in status_filter.value)
        and (not verdict_filter.value or r["verdict"] in verdict_filter.value)
        and (not _needle or _needle in r["plan"].lower())
    ]
    _colours = {
        "running": view.STATE_COLOURS["running"],
        "waiting": view.STATE_COLOURS["waiting"],
        "interrupted": view.STATE_COLOURS["interrupted"],
        "SUCCESS": view.STATE_COLOURS["done"],
        "FAILURE": view.STATE_COLOURS["failed"],
        "INTERVENTION_NEEDED": view.STATE_COLOURS["waiting"],
    }

    def _style(row_id, column, value):
        if column in ("status", "verdict") and value in _colours:
            return {"backgroundColor": _colours[value]}
        return {}

    runs_table = mo.ui.table(
        _rows,
        selection="single",
        initial_selection=[i for i, r in enumerate(_rows) if r["run"] == memo["selected"]],
        page_size=10,
        show_column_summaries=False,
        style_cell=_style,
        label=f"{len(_rows)} of {len(get_rows())} runs; select one to see it",
    )
    mo.vstack(
        [
            mo.md("## Runs"),
            mo.hstack([status_filter, verdict_filter, plan_filter], justify="start"),
            runs_table if _rows else mo.md("_No runs in the journal match._"),
        ]
    )
    return (runs_table,)


@app.cell
def _(memo, runs_table, select):
    # A row picked in the table selects its run.
    _chosen = runs_table.value
    if _chosen:
        _run_id = _chosen[0]["run"]
        if _run_id != memo["selected"]:
            select(_run_id)
    return


@app.cell
def _(config, get_pending, json, mo, text, view):
    # The intervention the selected run waits for: what the step would do,
    # the condition that fired, and the answers a person can give.
    intervention = get_pending()
    approve_button = mo.ui.run_button(label="Approve", kind="success")
    reject_button = mo.ui.run_button(label="Reject", kind="danger")
    reason_text = mo.ui.text(placeholder="why (goes into the run)", label="reason", full_width=True)
    answer_text = mo.ui.text_area(
        value=text.pretty_json(intervention[1].get("output")) if intervention else "",
        rows=6,
        label="answer: the step's output, as JSON",
        full_width=True,
    )
    answer_button = mo.ui.run_button(label="Answer")
    _panel = None
    if intervention is not None:
        _run_id, _p, _tool = intervention
        if _p.get("kind") == "approval":
            _what = mo.vstack(
                [
                    mo.md(
                        f"Step **`{_p['step_id']}`** needs approval before its tool runs, "
                        "with these arguments:"
                    ),
                    mo.json(json.dumps(_p.get("args") or {})),
                ]
            )
            _answers = [
                mo.hstack([approve_button, reject_button], justify="start"),
                reason_text,
            ]
        else:
            _what = mo.vstack(
                [
                    mo.md(
                        f"Step **`{_p['step_id']}`** stopped the run: "
                        f"{text.md_code(_p.get('expression'))} was true. Its output:"
                    ),
                    mo.json(json.dumps(_p.get("output"))),
                ]
            )
            _schema = view.answer_schema(config.registry(), _tool)
            _answers = [
                mo.hstack([approve_button, reject_button], justify="start"),
                reason_text,
                answer_text,
                mo.accordion(
                    {
                        f"the output type tool {_tool} declares": mo.json(json.dumps(_schema))
                        if _schema is not None
                        else mo.md(
                            f"Tool {text.md_code(_tool)} declares no output type: "
                            "any JSON is taken."
                        )
                    }
                ),
                answer_button,
            ]
        _panel = mo.callout(
            mo.vstack(
                [
                    mo.md(
                        f"### Waiting for a person: run `{_run_id}` "
                        f"(intervention `{_p.get('intervention_id')}`)"
                    ),
                    _what,
                    *_answers,
                ]
            ),
            kind="warn",
        )
    _panel
    return (
        answer_button,
        answer_text,
        approve_button,
        intervention,
        reason_text,
        reject_button,
    )


@app.cell
def _(
    Decision,
    EngineError,
    actions,
    answer_button,
    answer_text,
    approve_button,
    config,
    intervention,
    json,
    mo,
    reason_text,
    reject_button,
    text,
):
    # Answering resumes the run in the background (durable.resume_run, as
    # `marimo-engine resume` does); the page follows it through the journal.
    _said = None
    if intervention is not None and (
        approve_button.value or reject_button.value or answer_button.value
    ):
        _run_id, _p, _tool = intervention
        try:
            if approve_button.value:
                _decision = Decision.approve()
            elif reject_button.value:
                _decision = Decision.reject(reason_text.value.strip() or None)
            else:
                try:
                    _decision = Decision.answer(json.loads(answer_text.value))
                except ValueError as _exc:
                    raise EngineError(f"The answer is not JSON ({_exc}); fix it.") from _exc
            actions.resume(config, _run_id, _decision, intervention_id=_p.get("intervention_id"))
            _said = mo.callout(mo.md(f"Resuming run `{_run_id}`: {_decision.action}."), kind="info")
        except EngineError as _exc:
            _said = mo.callout(mo.md(f"**Not resumed:** {text.md_text(_exc)}"), kind="danger")
    _said
    return


@app.cell
def _(actions, charts, get_view, journal, json, mo, text, view):
    # The selected run: summary, DAG, timeline, key findings, every step.
    _v = get_view()
    if _v is None:
        _out = mo.md("_Select a run in the table to see it here._")
    else:
        _outputs = view.read_outputs(journal, _v.run_id)

        def _show(value):
            if isinstance(value, view.UnloadableOutput):
                return mo.callout(
                    mo.md(
                        f"A `{value.output_format}` output this process cannot load: {value.error}"
                    ),
                    kind="neutral",
                )
            return mo.as_html(view.displayable(value))

        _counts = {}
        for _s in _v.steps:
            _counts[_s.state] = _counts.get(_s.state, 0) + 1
        _summary = mo.hstack(
            [
                mo.stat(_v.state, label="status"),
                mo.stat(_v.verdict or "-", label="verdict"),
                mo.stat(
                    "-" if _v.duration_s is None else f"{_v.duration_s:.2f} s",
                    label="duration",
                ),
                mo.stat(", ".join(f"{n} {s}" for s, n in _counts.items()), label="steps"),
            ],
            justify="start",
        )
        _parts = [
            mo.md(
                f"## Run {text.md_code(_v.run_id)}\n\n"
                f"plan **{text.md_text(_v.plan_name)}** ({text.md_code(_v.plan_id)})"
                + (f", a re-run of `{_v.parent_run_id}`" if _v.parent_run_id else "")
            ),
            _summary,
        ]
        if _v.error:
            _parts.append(
                mo.callout(
                    mo.md(
                        f"**{text.md_text(_v.error.get('type'))}**: "
                        f"{text.md_text(_v.error.get('message'))}"
                    ),
                    kind="danger",
                )
            )
        _crashed = actions.background_errors().get(_v.run_id)
        if _crashed:
            _parts.append(
                mo.callout(
                    mo.md(f"The page's run of it stopped: {text.md_text(_crashed)}"),
                    kind="danger",
                )
            )
        for _s in _v.steps:
            if _s.error:
                _parts.append(
                    mo.callout(
                        mo.md(
                            f"Step **`{_s.step_id}`** failed: "
                            f"**{text.md_text(_s.error.get('type'))}**: "
                            f"{text.md_text(_s.error.get('message'))}"
                        ),
                        kind="danger",
                    )
                )
        _parts.append(mo.md("### DAG"))
        _parts.append(mo.mermaid(charts.mermaid_dag(_v.steps)))
        _chart = charts.timeline_chart(_v)
        if _chart is not None:
            _parts.append(_chart)
        _findings = [s for s in _v.steps if s.key_finding and s.step_id in _outputs]
        if _findings:
            _parts.append(mo.md("### Key findings"))
            for _s in _findings:
                _parts.append(mo.md(f"**`{_s.step_id}`**"))
                _parts.append(_show(_outputs[_s.step_id]))
        _items = {}
        for _s in _v.steps:
            _body = []
            if _s.description:
                _body.append(mo.md(text.md_text(_s.description)))
            _facts = f"tool `{_s.tool}` · state **{_s.state}**"
            if _s.attempt:
                _facts += f" · tries {_s.attempt}"
            if _s.starts > 1:
                _facts += f" · started {_s.starts} times"
            if _s.duration_s is not None:
                _facts += f" · {_s.duration_s:.3f} s"
            if _s.reused_from:
                _facts += f" · output from run `{_s.reused_from}`"
            _body.append(mo.md(_facts))
            _body.append(mo.md("arguments (as the plan writes them):"))
            _body.append(mo.json(json.dumps(dict(_s.args))))
            _resolved = view.resolved_args(_s, _outputs)
            if _resolved is not None:
                _body.append(mo.md("arguments the tool got (references resolved):"))
                _body.append(mo.as_html(view.displayable(_resolved)))
            if _s.reason:
                _body.append(mo.md(f"skipped: {text.md_text(_s.reason)}"))
            if _s.error:
                _body.append(
                    mo.callout(
                        mo.vstack(
                            [
                                mo.md(
                                    f"**{text.md_text(_s.error.get('type'))}**: "
                                    f"{text.md_text(_s.error.get('message'))}"
                                ),
                                *(
                                    [mo.plain_text(_s.error["traceback"])]
                                    if _s.error.get("traceback")
                                    else []
                                ),
                            ]
                        ),
                        kind="danger",
                    )
                )
            if _s.step_id in _outputs:
                _body.append(mo.md("output:"))
                _body.append(_show(_outputs[_s.step_id]))
            _items[f"{_s.step_id} · {_s.state}"] = mo.vstack(_body)
        _parts.append(mo.md("### Steps"))
        _parts.append(mo.accordion(_items, multiple=True))
        _out = mo.vstack(_parts)
    _out
    return


@app.cell
def _(get_selected, journal, mo):
    # Re-run: change a step's arguments; only it and its dependents run again.
    from marimo_engine.engine.durable import journaled_plan

    rerun_of = get_selected()
    _record = journal.get_run(rerun_of, steps=False) if rerun_of else None
    rerun_plan = journaled_plan(_record) if _record is not None else None
    _ids = [
        s["id"]
        for s in (rerun_plan or {}).get("steps", [])
        if isinstance(s, dict) and isinstance(s.get("id"), str)
    ]
    rerun_step = mo.ui.dropdown(options=_ids, value=_ids[0] if _ids else None, label="step")
    return rerun_of, rerun_plan, rerun_step


@app.cell
def _(mo, rerun_of, rerun_plan, rerun_step, text):
    _step = next(
        (
            s
            for s in (rerun_plan or {}).get("steps", [])
            if isinstance(s, dict) and s.get("id") == rerun_step.value
        ),
        None,
    )
    rerun_old_args = dict((_step or {}).get("args") or {})
    rerun_args = mo.ui.text_area(
        value=text.pretty_json(rerun_old_args),
        rows=6,
        label="arguments, as JSON",
        full_width=True,
    )
    rerun_button = mo.ui.run_button(label="Re-run with these arguments")
    (
        mo.accordion(
            {
                "Re-run with changed arguments": mo.vstack(
                    [
                        mo.md(
                            f"A new run of run `{rerun_of}`'s plan: the changed step and the "
                            "steps that depend on it run; every other output is taken from "
                            "this run."
                        ),
                        rerun_step,
                        rerun_args,
                        rerun_button,
                    ]
                )
            }
        )
        if rerun_of and _step is not None
        else None
    )
    return rerun_args, rerun_button, rerun_old_args


@app.cell
def _(
    EngineError,
    actions,
    config,
    json,
    mo,
    rerun_args,
    rerun_button,
    rerun_of,
    rerun_old_args,
    rerun_step,
    select,
    text,
):
    _said = None
    if rerun_button.value and rerun_of:
        try:
            try:
                _new = json.loads(rerun_args.value)
            except ValueError as _exc:
                raise EngineError(f"The arguments are not JSON ({_exc}); fix them.") from _exc
            if not isinstance(_new, dict):
                raise EngineError("The arguments must be a JSON object of names to values.")
            _changes = actions.rerun_changes(rerun_step.value, rerun_old_args, _new)
            _new_id = actions.rerun(config, rerun_of, _changes)
            select(_new_id)
            _said = mo.callout(mo.md(f"Re-run `{_new_id}` started."), kind="info")
        except EngineError as _exc:
            _said = mo.callout(mo.md(f"**Not re-run:** {text.md_text(_exc)}"), kind="danger")
    _said
    return


@app.cell
def _(EngineError, actions, config, mo, set_proposal, text):
    # Chat with the planner agent: a goal becomes a plan, shown for approval.
    from marimo_engine.agents.planner import PROPOSED_ONLY

    async def _planner(messages, chat_config):
        _goal = str(messages[-1].content).strip()
        try:
            _result = await actions.propose_plan(config, _goal)
        except EngineError as _exc:
            return f"**Cannot plan:** {text.md_text(_exc)}"
        if _result.stop_reason == PROPOSED_ONLY:
            _plan = _result.plans[-1].plan
            set_proposal({"goal": _goal, "plan": _plan})
            _steps = ", ".join(f"`{s.get('id')}` ({s.get('tool')})" for s in _plan["steps"])
            return (
                f"Plan `{_plan.get('id')}` has {len(_plan['steps'])} step(s): {_steps}. "
                "Look at it below the chat and approve it to run it.\n\n" + text.fenced_json(_plan)
            )
        _why = _result.error or _result.stop_reason
        if _result.plans and _result.plans[-1].problems:
            _why += "; " + "; ".join(p.describe() for p in _result.plans[-1].problems[:3])
        return f"**No valid plan:** {text.md_text(_why)}"

    chat = mo.ui.chat(
        _planner,
        prompts=["Check the hull and the air", "Summarise the Seattle weather by year"],
    )
    mo.vstack(
        [
            mo.md(
                "## Chat with the planner\n\n"
                + (
                    f"model `{config.model}`"
                    if config.model
                    else "No model: start with `marimo-engine ui --model MODEL`."
                )
            ),
            chat,
        ]
    )
    return


@app.cell
def _(charts, get_proposal, mo, text, view):
    proposal = get_proposal()
    run_plan_button = mo.ui.run_button(label="Approve and run", kind="success")
    (
        mo.callout(
            mo.vstack(
                [
                    mo.md(
                        f"### Proposed plan `{proposal['plan'].get('id')}`\n\n"
                        f"for: {text.md_text(proposal['goal'])}"
                    ),
                    mo.mermaid(charts.mermaid_dag(view.step_views(proposal["plan"]))),
                    run_plan_button,
                ]
            ),
            kind="info",
        )
        if proposal
        else None
    )
    return proposal, run_plan_button


@app.cell
def _(
    EngineError,
    actions,
    config,
    mo,
    proposal,
    run_plan_button,
    select,
    set_proposal,
    text,
):
    _said = None
    if run_plan_button.value and proposal:
        try:
            _run_id = actions.start_plan(config, proposal["plan"])
            select(_run_id)
            set_proposal(None)
            _said = mo.callout(mo.md(f"Run `{_run_id}` started."), kind="info")
        except EngineError as _exc:
            _said = mo.callout(mo.md(f"**Not run:** {text.md_text(_exc)}"), kind="danger")
    _said
    return


if __name__ == "__main__":
    app.run()
