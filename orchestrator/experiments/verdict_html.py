"""The verdict block of the HTML report: the gate's or the acceptance test's, or both.

Kept apart from ``report.py`` (which lays out the summary) so a verdict is rendered in
one place; the report only inserts the block under its header. Uses the report's CSS
classes (``good``/``bad``, tables in ``div.scroll``).
"""

from __future__ import annotations

from html import escape
from typing import Any

from orchestrator.experiments.criteria import Operator
from orchestrator.experiments.gate import GateResult

HEADERS = ("metric", "statistic", "condition", "control", "candidate", "verdict")


def _badge(passed: bool) -> str:
    return (
        '<strong class="good">PASSED</strong>' if passed else '<strong class="bad">FAILED</strong>'
    )


def gate_block(result: GateResult) -> str:
    """The gate's verdict and, when it failed, its explanation (as the CLI prints it)."""
    head = (
        f"<h2>Gate</h2>\n<p>{_badge(not result.failed)} <code>{escape(result.expression)}</code>"
        f" against baseline {escape(result.baseline)}: {result.checked} pair(s) checked,"
        f" {len(result.violations)} violation(s).</p>"
    )
    if not result.failed:
        return head
    return head + f"\n<pre>{escape(result.describe())}</pre>"


def acceptance_block(test_id: str, status: str, results: dict[str, Any] | None) -> str:
    """The acceptance test's overall verdict and one row per metric."""
    title = f"<h2>Acceptance test {escape(test_id)}</h2>"
    if results is None:
        return f"{title}\n<p>pending: the experiment is {escape(status)}</p>"
    parts = [f"{title}\n<p>{_badge(bool(results['passed']))}</p>"]
    rows = [_metric_row(r) for r in results.get("metric_results") or []]
    if rows:
        head = "".join(f'<th class="l">{h}</th>' for h in HEADERS)
        parts.append(
            f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows)
            + "\n</tbody></table></div>"
        )
    if results.get("error"):
        parts.append(f'<p class="bad">{escape(str(results["error"]))}</p>')
    return "\n".join(parts)


def _metric_row(result: dict[str, Any]) -> str:
    metric, comparison = result["metric"], result.get("comparison") or {}
    tolerance = metric["params"].get("tolerance") or {}
    condition = f"{Operator(metric['params']['operator']).symbol} control"
    if tolerance.get("value"):
        unit = "%" if tolerance.get("type") == "relative" else ""
        amount = tolerance["value"] * (100 if unit else 1)
        condition += f" (tolerance {amount:g}{unit})"
    cells = [
        f'<td class="l">{escape(metric["field"])}</td>',
        f'<td class="l">{escape(metric["statistic"])}</td>',
        f"<td>{escape(condition)}</td>",
        f"<td>{comparison.get('control', 0):.4g}</td>",
        f"<td>{comparison.get('candidate', 0):.4g}</td>",
        f"<td>{_badge(bool(result['passed']))}</td>",
    ]
    return "<tr>" + "".join(cells) + "</tr>"
