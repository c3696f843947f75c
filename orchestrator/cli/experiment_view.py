"""How ``orch experiment`` shows things: the daemon's JSON turned into rich tables.

Rendering only. Every number (distributions, wins and losses, gate verdicts) is computed
by the daemon (``Summary.to_dict()``), so the CLI, the API and the HTML report never
disagree; this module only chooses columns and formats numbers for a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orchestrator.cli import output, render
from orchestrator.cli.output import record, table
from orchestrator.client.types import (
    Experiment,
    ExperimentMetadata,
    ExperimentRun,
    InputSet,
    Summary,
)
from orchestrator.experiments.paired import (
    NO_DIFFERENCE,
    TIMING_WORDS,
    VALUE_WORDS,
    PairedChange,
    called,
)
from orchestrator.experiments.summary import FAILED_LABEL
from orchestrator.formatting import number

OUTCOME_COLUMNS = [
    ("target", "target"),
    ("runs", "runs"),
    ("succeeded", "succeeded"),
    (FAILED_LABEL, "failed"),  # the count includes timed_out: the header says so
    ("timed_out", "timed_out"),
    ("canceled", "canceled"),
]
STATS = ("median", "mean", "p90", "min", "max", "std")
EXPERIMENT_FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("status", "status"),
    ("input set", "input_set_id"),
    ("targets", "targets_text"),
    ("baseline", "baseline"),
    ("objective", "objective"),
    ("option sets", "option_sets_text"),
    ("queue seed", "seed"),
    ("runs", "progress"),
    ("run counts", "counts_text"),
    ("created", "created_at"),
    ("ended", "ended_at"),
]
EXPERIMENT_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("status", "status"),
    ("runs", "progress"),
    ("created", "created_at"),
    ("ended", "ended_at"),
]
RUN_COLUMNS = [
    ("run", "id"),
    ("target", "target"),
    ("input", "input_id"),
    ("input name", "input_name"),
    ("option set", "option_set"),
    ("rep", "repetition"),
    ("status", "status_v2"),
    ("duration ms", "duration_ms"),
    ("result.value", "value"),
]
INPUT_SET_FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("inputs", "count"),
    ("created", "created_at"),
    ("updated", "updated_at"),
]
INPUT_SET_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("inputs", "count"),
    ("description", "description"),
    ("updated", "updated_at"),
]
INPUT_COLUMNS = [
    ("input", "id"),
    ("name", "name"),
    ("format", "format.input.type"),
    ("bytes", "size"),
    ("from run", "run_id"),
]


def count_of(count: int, noun: str) -> str:
    """``1 run``, ``3 runs``: a count the user reads in a sentence agrees with its noun."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def a_kind(word: str | None) -> str:
    """``a batch``, ``an acceptance``: the article a kind of experiment takes."""
    text = str(word)
    return f"an {text}" if text[:1].lower() in ("a", "e", "i", "o", "u") else f"a {text}"


def change(value: Any) -> str:
    """A relative change as a signed percentage; ``-`` when undefined (baseline 0)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return f"{value * 100:+.2f}%"


# --- summary -----------------------------------------------------------------------------


def summary(data: Summary) -> None:
    """The three views of a summary: outcomes, metric distributions, baseline comparison."""
    targets = data.get("targets") or []
    if not targets:
        output.say("no runs to summarize")
        return
    outcomes(targets)
    metrics(targets)
    if data.get("comparisons"):
        comparisons(data)


def outcomes(targets: list[dict[str, Any]]) -> None:
    columns = list(OUTCOME_COLUMNS)
    if any(t.get("unfinished") for t in targets):
        columns.append(("unfinished", "unfinished"))
    table(targets, columns, title="Runs by target")


def metrics(targets: list[dict[str, Any]]) -> None:
    rows = [
        {"target": t["target"], "metric": name, "n": d["count"]}
        | {stat: number(d[stat]) for stat in STATS}
        for t in targets
        for name, d in (t.get("metrics") or {}).items()
    ]
    if not rows:
        output.say("no succeeded run reported a metric")
        return
    columns = [("target", "target"), ("metric", "metric"), ("n", "n")]
    table(rows, columns + [(s, s) for s in STATS], title="Metrics of succeeded runs")


def comparisons(data: Summary) -> None:
    """Per candidate: result.value verdicts on paired inputs, then the timing changes."""
    items = data["comparisons"]
    better_when_lower = data["objective"] == "min"
    rows = [
        {
            "target": c["target"],
            "paired": c["paired"],
            "unpaired": c["unpaired"],
            "wins": c["wins"],
            "losses": c["losses"],
            "ties": c["ties"],
            "mean": change(c["mean_relative_change"]),
            "interval": interval(c.get("value_change")),
            "median": change(c["median_relative_change"]),
            "verdict": verdict(
                c.get("value_change"), VALUE_WORDS, better_when_lower, c.get("paired")
            ),
        }
        for c in items
    ]
    columns = [
        ("candidate", "target"),
        ("paired", "paired"),
        ("unpaired", "unpaired"),
        ("wins", "wins"),
        ("losses", "losses"),
        ("ties", "ties"),
        ("mean Δ", "mean"),
        ("95% interval", "interval"),
        ("median Δ", "median"),
        ("verdict", "verdict"),
    ]
    title = (
        f"result.value vs baseline {data['baseline']} (objective: {data['objective']}; "
        "Δ = relative change per input)"
    )
    table(rows, columns, title=title)
    timing(items)


def timing(items: list[dict[str, Any]]) -> None:
    """Timing changes with their interval; only a significant one is called a difference."""
    rows = [
        {
            "target": c["target"],
            "metric": metric,
            "pairs": ch.get("pairs"),
            "change": change(ch.get("mean_relative_change")),
            "interval": interval(ch),
            "verdict": verdict(ch, TIMING_WORDS, True),
        }
        for c in items
        for metric, ch in (c.get("timing") or {}).items()
        if ch.get("pairs")
    ]
    if rows:
        columns = [
            ("candidate", "target"),
            ("metric", "metric"),
            ("pairs", "pairs"),
            ("change", "change"),
            ("95% interval", "interval"),
            ("verdict", "verdict"),
        ]
        title = "Timing vs baseline (runs paired by input, option set and repetition)"
        table(rows, columns, title=title)


def interval(paired: dict[str, Any] | None) -> str:
    """``[low, high]`` of a paired change; ``-`` with fewer than 2 pairs (no spread)."""
    if not paired or paired.get("low") is None or paired.get("high") is None:
        return "-"
    return f"[{change(paired['low'])}, {change(paired['high'])}]"


def verdict(
    paired: dict[str, Any] | None,
    words: tuple[str, str],
    lower_is_good: bool,
    paired_inputs: int | None = None,
) -> str:
    """``words`` = (good, bad) when the daemon found the change significant, else says why
    not (``paired.not_called``: with 0 pairs, that nothing was compared).
    ``paired_inputs``: the comparison's ``paired`` count, for result.value."""
    if not paired:
        return NO_DIFFERENCE
    change = PairedChange(
        pairs=paired.get("pairs") or 0,
        mean_relative_change=paired.get("mean_relative_change"),
        low=paired.get("low"),
        high=paired.get("high"),
        significant=bool(paired.get("significant")),
    )
    return called(change, words, lower_is_good, paired_inputs)


def progress_text(meta: ExperimentMetadata) -> str:
    return f"{meta['number_of_completed_runs']}/{meta['number_of_requested_runs']} finished"


def pairs(mapping: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (mapping or {}).items())


def experiment(data: Experiment) -> None:
    view = data | {
        "targets_text": ", ".join(data.get("targets") or []),
        "option_sets_text": "; ".join(
            f"{name}: {pairs(opts) or '-'}"
            for name, opts in (data.get("option_sets") or {}).items()
        ),
        "progress": progress_text(data),
        "counts_text": pairs(data.get("run_counts")),
    }
    record(view, EXPERIMENT_FIELDS)


def experiments(rows: list[Experiment]) -> None:
    table([r | {"progress": progress_text(r)} for r in rows], EXPERIMENT_COLUMNS)


def runs(items: list[ExperimentRun], with_scenario: bool = False) -> None:
    """Experiment runs: the daemon gives each its target, input name and result.value
    (and, in a scenario test, its scenario). Input by input, the targets of one input and
    option set side by side: the daemon lists them in the order they were queued, which
    is shuffled (fair timing), and hard to read across."""
    rows = [
        r
        | {
            "duration_ms": round(r["duration"]) if r.get("duration") else None,
            "value": number(r["result_value"]) if r.get("result_value") is not None else None,
        }
        for r in sorted(items, key=_reading_order)
    ]
    table(
        rows,
        [RUN_COLUMNS[0], ("scenario", "scenario_id"), *RUN_COLUMNS[1:]]
        if with_scenario
        else RUN_COLUMNS,
    )


def _reading_order(run: ExperimentRun) -> tuple[str, str, str, int, str]:
    scenario = str(run.get("scenario_id") or "")
    where = str(run.get("input_name") or run.get("input_id") or "")
    repetition = run.get("repetition")
    rep = repetition if isinstance(repetition, int) else 0
    return scenario, where, str(run.get("option_set") or ""), rep, str(run.get("target") or "")


def input_set(data: InputSet) -> None:
    record(data | {"count": len(data.get("input_ids") or [])}, INPUT_SET_FIELDS)
    table(data.get("inputs") or [], INPUT_COLUMNS, title="Inputs")


def input_sets(rows: Iterable[InputSet]) -> None:
    table([r | {"count": len(r.get("input_ids") or [])} for r in rows], INPUT_SET_COLUMNS)


def progress() -> Progress:
    """A bar of finished/requested runs on stderr, so stdout keeps only the summary."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=render.err,
    )


def progress_label(meta: ExperimentMetadata) -> str:
    counts = meta.get("run_counts") or {}
    bad = {s: counts[s] for s in ("failed", "canceled") if counts.get(s)}
    tail = f" ({pairs(bad)})" if bad else ""
    return f"{meta['id']}: {counts.get('running', 0)} running{tail}"
