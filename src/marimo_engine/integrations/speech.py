"""A plan run in words for a person listening: sentences, pacing, questions, a summary.

Voice hosts (the Pipecat integration, docs/pipecat.md) speak a run as it
happens. What they say is decided here, once, from the engine's events:

- **Names, not ids.** A step is called by its `description` ("Scan the
  hull"); a step without one by its tool's name in words ("check oxygen").
- **No JSON.** An output is read as up to three of its plain fields
  ("level 12.0, pressure kpa 12.16, status critical").
- **One sentence per event worth hearing**: the start, each step done,
  skipped, retried or failed. `STEP_START` is not spoken (the sentence about
  its end follows soon), nor `FINISH` (the LLM speaks the result it returns).
- **Paced.** `SpeechPacer` lets one sentence through per `interval_s`
  seconds; what arrives faster waits and is then said as one sentence
  ("Check oxygen and Analyse the air: done."), so a listener is never
  behind the run by more than one sentence.

Nothing here imports a voice framework; the module is pure and takes the
clock as an argument, so pacing is tested without waiting.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from marimo_engine.engine.events import EventType, Verdict

if TYPE_CHECKING:
    from marimo_engine.engine.events import Event, ExecutionResult, InterventionInfo
    from marimo_engine.plans.schema import Plan, Step

__all__ = [
    "DEFAULT_SPEECH_INTERVAL_S",
    "PlanWords",
    "SpeechPacer",
    "Utterance",
    "describe_value",
    "join_words",
    "step_label",
]

DEFAULT_SPEECH_INTERVAL_S = 4.0
"""Seconds between two progress sentences: about one sentence of 8 to 10 words
read by a text-to-speech voice at 150 words a minute, with a pause."""

_MAX_FIELDS = 3
_UNITS = (
    ("_percent", "percent"),
    ("_kpa", "kilopascals"),
    ("_ppm", "parts per million"),
    ("_ms", "milliseconds"),
    ("_s", "seconds"),
    ("_bytes", "bytes"),
)
"""Field-name suffixes read as a unit after the value: `pressure_kpa` is "pressure 12.2
kilopascals"."""
_MAX_TEXT_CHARS = 80
_OPERATORS = (
    ("<=", "is at most"),
    (">=", "is at least"),
    ("==", "is"),
    ("!=", "is not"),
    ("<", "is below"),
    (">", "is above"),
)


def step_label(step: Step) -> str:
    """The name a person hears for a step: its description, else its tool's name in words.

    Args:
        step: A plan step.

    Returns:
        The description without a trailing full stop (`"Scan the hull"`), or
        the tool name with `_`/`-` as spaces and a capital first letter
        (`"Check oxygen"`).
    """
    text = (step.description or "").strip().rstrip(".").strip()
    if not text:
        text = re.sub(r"[_-]+", " ", step.tool).strip() or step.id
    return _clip(text[0].upper() + text[1:])


def join_words(items: Sequence[str]) -> str:
    """`["a"]` -> `"a"`, `["a", "b"]` -> `"a and b"`, `["a", "b", "c"]` -> `"a, b and c"`."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def describe_value(value: Any, *, max_fields: int = _MAX_FIELDS) -> str:
    """A value read aloud: plain words, never JSON.

    Args:
        value: A step output or argument: a scalar, a dataclass, a pydantic
            model, a mapping, a list.
        max_fields: How many fields of a record are read (the first ones
            whose values are plain: numbers, text, yes/no, short lists;
            fields named `id` or `..._id` are left out).

    Returns:
        `"20.9"`, `"yes"`, `"bow and stern"`, `"4 items"`, or for a record
        `"level 12, pressure 12.16 kilopascals, status critical"` (field
        names with `_` as spaces, a unit suffix such as `_kpa`, `_percent`
        or `_s` read after the value).
        An empty string when nothing plain can be said.
    """
    fields = _fields(value)
    if fields is None:
        return _scalar_words(value) or ""
    spoken = []
    for name, item in fields.items():
        if str(name) == "id" or str(name).endswith("_id"):
            continue  # ids are not for listeners
        words = _scalar_words(item)
        if words:
            spoken.append(_field_words(str(name), words))
        if len(spoken) >= max_fields:
            break
    return ", ".join(spoken)


def _field_words(name: str, words: str) -> str:
    for suffix, unit in _UNITS:
        if name.endswith(suffix) and len(name) > len(suffix) and words[:1].isdigit():
            return f"{name[: -len(suffix)].replace('_', ' ')} {words} {unit}"
    return f"{name.replace('_', ' ')} {words}"


def _fields(value: Any) -> Mapping[str, Any] | None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            data = dump()
        except Exception:
            return None
        return data if isinstance(data, Mapping) else None
    return None


def _scalar_words(value: Any) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return f"{round(value, 2):g}" if abs(value) < 1e6 else f"{value:.3g}"
    if isinstance(value, str):
        return _clip(" ".join(value.split())) or None
    if isinstance(value, Enum):
        return _scalar_words(value.value)
    if isinstance(value, list | tuple):
        if not value:
            return "none"
        words = [_scalar_words(v) for v in value]
        if len(value) <= 3 and all(w and "," not in w for w in words):
            return join_words([w for w in words if w])
        return f"{len(value)} items"
    return None


def _clip(text: str, limit: int = _MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _first_sentence(text: str) -> str:
    text = " ".join(str(text).split())
    match = re.search(r"[.;!?](\s|$)", text)
    return _clip((text[: match.start()] if match else text).strip())


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One thing to say about a run.

    Attributes:
        text: The sentence, ready for text-to-speech.
        kind: `start`, `done`, `skipped`, `retry` or `failed`: what a summary
            of several utterances groups by.
        label: The step's spoken name (empty for `start`).
    """

    text: str
    kind: str
    label: str = ""


class PlanWords:
    """What to say about one plan's run: sentences, questions and the summary.

    Args:
        plan: The validated plan (its steps' descriptions name them).
        resumed: The run goes on from an earlier one (`durable.resume_run`):
            its start is said as carrying on, and steps whose output was
            taken from the journal (`reused_from`) are not said again.
    """

    def __init__(self, plan: Plan, *, resumed: bool = False) -> None:
        self.plan = plan
        self.resumed = resumed
        self.labels = {step.id: step_label(step) for step in plan.steps}
        self.title = (plan.name or "").strip().rstrip(".") or "the plan"

    def label(self, step_id: str | None) -> str:
        """The spoken name of step `step_id` (the id itself for an unknown step)."""
        return self.labels.get(step_id or "", step_id or "the plan")

    def message_words(self, message: str) -> str:
        """The first sentence of an engine message, with `step 's2'` read as the step's name."""

        def name(match: re.Match[str]) -> str:
            sid = match.group(1)
            return self.labels[sid] if sid in self.labels else match.group(0)

        return _first_sentence(re.sub(r"\bstep '([^']+)'", name, message))

    def utterance(self, event: Event) -> Utterance | None:
        """The sentence for `event`, or `None` for events not spoken (module docstring).

        Args:
            event: An event of this plan's run.

        Returns:
            An `Utterance`, or `None` for `STEP_START`, `INTERVENTION_NEEDED`
            (a question is asked instead: `question`), `FINISH`, and a
            `STEP_COMPLETE` whose output was reused from the journal.
        """
        kind = event.type
        label = self.label(event.step_id)
        if kind is EventType.START and self.resumed:
            return Utterance(f"Carrying on with {self.title}.", "start")
        if kind is EventType.START:
            count = len(self.plan.steps)
            noun = "step" if count == 1 else "steps"
            return Utterance(f"Starting {self.title}: {count} {noun}.", "start")
        if kind is EventType.STEP_COMPLETE and event.reused_from:
            return None  # done before, and said then
        if kind is EventType.STEP_COMPLETE:
            step = self.plan.step(event.step_id) if event.step_id in self.labels else None
            details = describe_value(event.output) if step is not None and step.key_finding else ""
            text = f"{label}: {details}." if details else f"{label}: done."
            return Utterance(text, "done", label)
        if kind is EventType.STEP_SKIPPED:
            why = " as you asked" if (event.reason or "").startswith("a person rejected") else ""
            return Utterance(f"{label}: skipped{why}.", "skipped", label)
        if kind is EventType.STEP_RETRY:
            return Utterance(f"{label} failed, trying again.", "retry", label)
        if kind is EventType.ERROR:
            message = event.error.message if event.error else event.msg
            if event.step_id is None:
                return Utterance(f"The plan failed: {self.message_words(message)}.", "failed")
            return Utterance(f"{label} failed: {self.message_words(message)}.", "failed", label)
        return None

    def question(self, info: InterventionInfo) -> str:
        """The question to ask a person for an intervention, ready to speak.

        Args:
            info: What the engine's `on_intervention` callback was given.

        Returns:
            For an approval: `"Scan the hull needs your approval before it
            runs, with breach sections bow. Shall I go ahead?"`; for a
            condition: `"Check oxygen found level 12, pressure kpa 12.16,
            status low. Level is below 15, so I need your decision. Shall I
            carry on?"`.
        """
        label = self.label(info.step_id)
        if info.kind == "approval":
            args = describe_value(info.args or {})
            with_args = f", with {args}" if args else ""
            return f"{label} needs your approval before it runs{with_args}. Shall I go ahead?"
        found = describe_value(info.output)
        said = f"{label} found {found}. " if found else f"{label} finished. "
        condition = self.condition_words(info.expression, info.step_id)
        return f"{said}{condition}, so I need your decision. Shall I carry on?"

    def condition_words(self, expression: str, step_id: str) -> str:
        """An `intervention_if` or `run_if` expression in words.

        `$s2.level < 15` in step `s2` reads `"Level is below 15"`; a
        reference to another step names it (`"Scan the hull's breach
        detected"`).
        """
        from marimo_engine.plans.references import find_references

        text = " ".join(expression.split())
        for ref in sorted(find_references(text), key=lambda r: -len(r.text)):
            path = " ".join(p.replace("_", " ") for p in ref.path)
            owner = "" if ref.step_id == step_id else f"{self.label(ref.step_id)}'s "
            text = text.replace(ref.text, (owner + path).strip() or self.label(ref.step_id))
        for symbol, words in _OPERATORS:
            text = re.sub(rf"\s*{re.escape(symbol)}\s*", f" {words} ", text)
        text = " ".join(text.split())
        return text[:1].upper() + text[1:]

    def summary(self, result: ExecutionResult, *, note: str | None = None) -> str:
        """A short spoken summary of a finished run (the function result's `summary`).

        Args:
            result: The run's result.
            note: A sentence to add (why a run needing a person ended).

        Returns:
            One to three sentences: the verdict, what was done and skipped,
            the failure or the step waiting for a person, the key findings.
        """
        done = [self.label(sid) for sid in result.outputs]
        skipped = [self.label(sid) for sid in result.skipped]
        parts = []
        if result.verdict is Verdict.SUCCESS:
            parts.append(f"{self.title[:1].upper()}{self.title[1:]} finished successfully.")
        elif result.verdict is Verdict.INTERVENTION_NEEDED and result.intervention is not None:
            where = self.label(result.intervention.step_id)
            parts.append(f"{self.title[:1].upper()}{self.title[1:]} stopped at {where}: "
                         "it needs a person.")  # fmt: skip
        else:
            error = result.error
            where = f" at {self.label(error.step_id)}" if error and error.step_id else ""
            why = f": {self.message_words(error.message)}" if error else ""
            parts.append(f"{self.title[:1].upper()}{self.title[1:]} failed{where}{why}.")
        counts = []
        if done:
            counts.append(f"{len(done)} {'step' if len(done) == 1 else 'steps'} done")
        if skipped:
            counts.append(f"skipped: {join_words(skipped)}")
        if counts:
            text = "; ".join(counts)
            parts.append(text[:1].upper() + text[1:] + ".")
        for sid, value in result.key_findings.items():
            details = describe_value(value)
            if details:
                parts.append(f"{self.label(sid)}: {details}.")
        if note:
            parts.append(note)
        return " ".join(parts)


class SpeechPacer:
    """At most one progress sentence per `interval_s`; faster ones are said together.

    `offer` returns the sentence to say now, or keeps the utterance until
    `due_at`, when `flush` says everything kept as one sentence. A host calls
    `flush` at `due_at` (a timer), before a question (so the person hears
    what happened first), and may `drop` what is kept when the run's result
    is about to be spoken anyway.

    Args:
        interval_s: Least seconds between two sentences; `0` says each at once.
    """

    def __init__(self, interval_s: float = DEFAULT_SPEECH_INTERVAL_S) -> None:
        if interval_s < 0 or not math.isfinite(interval_s):
            raise ValueError(f"interval_s {interval_s!r} must be 0 or more seconds.")
        self.interval_s = interval_s
        self._last: float | None = None
        self._kept: list[Utterance] = []

    @property
    def due_at(self) -> float | None:
        """When (on the offered clock) the kept utterances should be said, or `None`."""
        if not self._kept:
            return None
        return (self._last or 0.0) + self.interval_s

    @property
    def kept(self) -> int:
        """How many utterances wait to be said."""
        return len(self._kept)

    def offer(self, utterance: Utterance, now: float) -> str | None:
        """Offer one utterance at time `now` (seconds, any monotonic clock).

        Returns:
            The sentence to say now, or `None` when it was kept for `flush`.
        """
        if not self._kept and (self._last is None or now - self._last >= self.interval_s):
            self._last = now
            return utterance.text
        self._kept.append(utterance)
        return None

    def flush(self, now: float) -> str | None:
        """Say what was kept, as one sentence; `None` when nothing was kept."""
        kept, self._kept = self._kept, []
        if not kept:
            return None
        self._last = now
        if len(kept) == 1:
            return kept[0].text
        return _together(kept)

    def drop(self) -> int:
        """Forget what was kept; returns how many utterances were dropped."""
        count, self._kept = len(self._kept), []
        return count


def _together(kept: Sequence[Utterance]) -> str:
    """Several utterances as one sentence, grouped by kind in the order first met.

    `"Check oxygen and Analyse the air: done; Scan the hull: skipped."`
    """
    groups: dict[str, list[str]] = {}
    for item in kept:
        names = groups.setdefault(item.kind, [])
        label = item.label or item.text.rstrip(".")
        if label not in names:
            names.append(label)
    words = {"done": "done", "skipped": "skipped", "retry": "trying again", "failed": "failed"}
    parts = [
        f"{join_words(names)}: {words[kind]}" if kind in words else join_words(names)
        for kind, names in groups.items()
    ]
    return "; ".join(parts) + "."
