"""What the daemon reads of a finished run's folder: fast in-process tests of
``runs/workspace.py`` (the end-to-end reads are in ``test_runs.py``)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from orchestrator.runs.workspace import sized_json, stderr_tail


def test_sized_json_reads_a_document_and_its_size(tmp_path: Path) -> None:
    path = tmp_path / "stdout"
    text = json.dumps({"statistics": {"result": {"value": 3}}})
    path.write_text(text)
    assert sized_json(path, 1024) == (len(text), {"statistics": {"result": {"value": 3}}})


def test_sized_json_gives_the_size_of_what_it_does_not_parse(tmp_path: Path) -> None:
    big, broken = tmp_path / "big", tmp_path / "broken"
    big.write_text(json.dumps({"x": "y" * 100}))
    broken.write_text("{not json")
    assert sized_json(big, 50) == (big.stat().st_size, None)
    assert sized_json(broken, 1024) == (9, None)
    assert sized_json(tmp_path / "missing", 1024) == (0, None)
    assert sized_json(tmp_path, 1024) == (0, None)  # a folder


def test_sized_json_does_not_block_on_a_fifo_left_by_a_model(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: the loop would hang."""
    fifo = tmp_path / "statistics.json"
    os.mkfifo(fifo)
    got: list[tuple[int, object]] = []
    reader = threading.Thread(target=lambda: got.append(sized_json(fifo, 1024)), daemon=True)
    reader.start()
    reader.join(5)
    assert got == [(0, None)]


def test_the_log_tail_starts_at_a_line(tmp_path: Path) -> None:
    log = tmp_path / "stderr"
    log.write_text("".join(f"line {i}\n" for i in range(1000)) + "Traceback: boom\n")
    tail = stderr_tail(log, max_bytes=100)
    assert tail.startswith("…line ") and tail.endswith("Traceback: boom")
    assert stderr_tail(tmp_path / "missing") == ""
