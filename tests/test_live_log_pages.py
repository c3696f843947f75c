"""The live log's pages (``runs/logs.read_live``): followed page by page, a log comes
back line for line, whatever its size and its characters (in-process, on a real file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.models import RunStatus
from orchestrator.runs.logs import MAX_LIVE_BYTES, read_live


def _follow(path: Path, status: RunStatus) -> list[str]:
    lines, since = [], 0
    while True:
        page = read_live(path, since, status)
        lines += [item["log"] for item in page["items"]]
        if int(page["next_page_token"]) == since:
            return lines
        since = int(page["next_page_token"])


@pytest.mark.parametrize("status", [RunStatus.RUNNING, RunStatus.SUCCEEDED])
@pytest.mark.parametrize("text", ["log line {} with some padding", "aéé€😀 {}"])
def test_a_log_of_several_pages_comes_back_line_for_line(
    tmp_path: Path, status: RunStatus, text: str
) -> None:
    """Pages of ``MAX_LIVE_BYTES`` used to end mid-line (a finished run's always did) and
    mid-character: the lines at each page's end came back split, with U+FFFD."""
    expected = [text.format(n) for n in range(120_000)]
    path = tmp_path / "log"
    path.write_text("".join(f"{line}\n" for line in expected))
    assert path.stat().st_size > 2 * MAX_LIVE_BYTES
    assert _follow(path, status) == expected


def test_a_line_longer_than_a_page_is_cut_between_characters(tmp_path: Path) -> None:
    line = "é" * MAX_LIVE_BYTES  # two bytes each: two pages and more, one line
    path = tmp_path / "log"
    path.write_text(line + "\ndone\n")
    pages = _follow(path, RunStatus.RUNNING)
    assert "".join(pages[:-1]) == line and pages[-1] == "done"
    assert all("\ufffd" not in page for page in pages)


def test_a_running_log_holds_its_half_written_line_back(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_text("one\ntw")
    page = read_live(path, 0, RunStatus.RUNNING)
    assert [i["log"] for i in page["items"]] == ["one"] and page["next_page_token"] == "4"
    done = read_live(path, 4, RunStatus.SUCCEEDED)
    assert [i["log"] for i in done["items"]] == ["tw"]
