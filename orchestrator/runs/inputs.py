"""Where a run's input lives: one file (json, text) or one folder (multi-file, csv-archive).

Inputs are written once into the run's directory and never copied again:
uploads are renamed into place, and archives are unpacked with the same
hostile-archive checks as packages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from orchestrator import standard_json, utf8
from orchestrator.errors import Invalid
from orchestrator.packaging.unpack import safe_extract
from orchestrator.runs.process import StrPath

DIRECTORY_FORMATS = frozenset({"multi-file", "csv-archive"})
FORMATS = frozenset({"json", "text", *DIRECTORY_FORMATS})


NOT_A_NUMBER = "it holds NaN or Infinity, which JSON has no numbers for"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Invalid(f"input format {fmt!r} is not one of {', '.join(sorted(FORMATS))}")
    return fmt


def write_inline(run_dir: StrPath, value: Any, fmt: str) -> tuple[str, int]:
    """An input sent in the request body (on the loop, for every such run: one ``open``
    and one ``write``, without ``pathlib`` or a buffered file object)."""
    if fmt in DIRECTORY_FORMATS:
        raise Invalid(f"{fmt} input must be uploaded as a tar.gz (POST .../runs/uploadurl)")
    if isinstance(value, str):
        data = utf8.encode(value, "input")
    else:
        try:  # the request's parser takes NaN and Infinity; JSON, and models' parsers, do not
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except ValueError:
            raise Invalid(f"input is not valid JSON: {NOT_A_NUMBER}") from None
        if "\\ud" in text:  # a surrogate, escaped: a pair (an emoji) or a lone one
            utf8.encode(json.dumps(value, ensure_ascii=False), "input")
        data = text.encode()
    path = f"{os.fspath(run_dir)}/input"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return path, len(data)


def adopt_upload(
    run_dir: StrPath, upload: Path, fmt: str, max_bytes: int, max_files: int
) -> tuple[str, int]:
    """Move an uploaded body into the run; archives for folder formats are unpacked."""
    if fmt not in DIRECTORY_FORMATS:
        path = Path(run_dir, "input")
        os.replace(upload, path)
        size = path.stat().st_size
        if fmt == "json":
            _check_json(path, size)
        return str(path), size
    folder = Path(run_dir, "input.d")
    try:
        size = safe_extract(upload, folder, max_bytes=max_bytes, max_files=max_files)
    finally:
        upload.unlink(missing_ok=True)
    return str(folder), size


def _check_json(path: Path, size: int, limit: int = 8 * 1024 * 1024) -> None:
    """Reject JSON that does not parse, up to a size where parsing costs the daemon little."""
    if size > limit:
        return
    try:
        standard_json.loads(path.read_bytes())
    except UnicodeDecodeError as exc:  # a ValueError too: words, not the codec's
        found = f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
        gzip = " (a gzip file: folder inputs go to multi-file or csv-archive apps)"
        what = gzip if exc.object[:2] == b"\x1f\x8b" else ""
        raise Invalid(f"input is not valid JSON: it is not UTF-8 text ({found}){what}") from None
    except ValueError as exc:
        raise Invalid(f"input is not valid JSON: {exc}") from None
