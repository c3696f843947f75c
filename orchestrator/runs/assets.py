"""A run's assets (Nextmv's ``assets`` convention): what they are and their bytes.

A model reports assets as a list of ``{name, content_type, content, visual?,
description?}``: a top-level ``assets`` in a JSON output, or the manifest's assets
file (``outputs/assets.json``) for folder formats; a tracked run may upload them
apart (``tracked.TRACKED_ASSETS``). ``content_type`` ``json`` (the default) holds
JSON ``content``. Any other content type is binary: the bytes of ``path`` (a file
of a folder output, relative to the output folder) or of ``content`` (a string;
base64 when ``encoding`` is ``base64``).

Listing reads no asset's bytes: a file's size is its ``stat``, looked up once per path
however many entries name it (a 5 MiB assets file can list one 1 GiB sparse file 100,000
times; reading it for each entry took the daemon out of memory). A file is opened only
when it is downloaded (``open_file``), and streamed from that descriptor. What is held
whole is only what the reported document itself holds (json content, content strings):
the document is read only up to the parse limit.

Ids are the run's id plus the position in the list: the list never changes once the
run finished.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import standard_json
from orchestrator.errors import NotFound
from orchestrator.models import Run
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.tracked import TRACKED_ASSETS
from orchestrator.runs.workspace import Workspace, confined, output_dir_name, read_assets

JSON = "json"
_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""A model's file is opened as ``run_files`` opens one: no link followed, no FIFO waited on."""
_POSITION = re.compile(r"[0-9]+")
_File = tuple[str, int | None]
"""A ``path`` of the assets list: the file it names, its size (None: no regular file in
the run's folder)."""


@dataclass(frozen=True, slots=True)
class Asset:
    id: str
    name: str
    content_type: str
    created_at: str
    size: int
    content: Any
    """The JSON value of a json asset; None for binary ones (``file`` or ``inline``)."""
    visual: dict[str, Any] | None = None
    description: str = ""
    file: str | None = None
    """A binary asset's file in a folder output: listing read its size, never its bytes."""
    root: str = ""
    """The folder ``file`` must really lie in (the model's working folder)."""
    inline: str | None = None
    """A binary asset's ``content`` string as reported, decoded when downloaded."""
    encoded: bool = False
    """Whether ``inline`` is base64."""

    @property
    def is_json(self) -> bool:
        return self.content_type == JSON

    def wire(self) -> dict[str, Any]:
        """The SDK's ``RunAsset`` (without the content, which has its own route)."""
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "created_at": self.created_at,
            "size": self.size,
            "description": self.description,
            **({"visual": self.visual} if self.visual is not None else {}),
        }

    def body(self) -> bytes:
        """The bytes of an asset held in the reported document (json content, a content
        string); a file's are streamed from ``open_file``."""
        if self.file is not None:
            raise ValueError(f"asset {self.id!r} is a file: open it with open_file")
        if self.inline is not None:
            return _decoded(self.inline, self.encoded) or b""
        return json.dumps(self.content).encode()


def run_assets(run: Run, ws: Workspace, parse_limit: int, assets_file: str) -> list[Asset]:
    """Every asset the run reported, in order (blocking: run it off the loop)."""
    files: dict[str, _File] = {}
    made = (
        _asset(run, ws, n, item, files)
        for n, item in enumerate(_reported(run, ws, parse_limit, assets_file))
        if isinstance(item, dict)
    )
    return [asset for asset in made if asset is not None]


def run_asset(run: Run, ws: Workspace, parse_limit: int, assets_file: str, asset_id: str) -> Asset:
    """The asset ``asset_id`` names, as ``run_assets`` lists it, without looking at the
    others (blocking: run it off the loop); NotFound when there is none."""
    prefix = f"{run.id}-asset-"
    position = asset_id.removeprefix(prefix)
    if asset_id.startswith(prefix) and _POSITION.fullmatch(position):
        n = int(position)
        if f"{prefix}{n}" == asset_id:  # one spelling per asset: no leading zeros
            reported = _reported(run, ws, parse_limit, assets_file)
            item = reported[n] if n < len(reported) else None
            asset = _asset(run, ws, n, item, {}) if isinstance(item, dict) else None
            if asset is not None:
                return asset
    raise NotFound(f"asset {asset_id!r} not found in run {run.id!r}")


def open_file(asset: Asset) -> tuple[int, int]:
    """``(descriptor, size)`` of a file asset's regular file, opened for reading now
    (blocking: run it off the loop); the caller closes the descriptor. NotFound when it
    is no longer a regular file inside the run's folder."""
    gone = NotFound(f"asset {asset.id!r}: its file is gone")
    try:
        if asset.file is None or not confined(asset.file, asset.root):
            raise gone
        fd = os.open(asset.file, _OPEN)
    except (OSError, ValueError):
        raise gone from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not _opened_within(fd, asset.root):
            raise gone
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def _opened_within(fd: int, root: str) -> bool:
    """Whether what ``fd`` opened lies in ``root``: a folder on its path swapped for a
    link after ``confined`` looked would have taken ``open`` elsewhere. Without /proc,
    ``confined`` stands alone."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return True
    return opened.startswith(os.path.realpath(root).rstrip("/") + "/")


def _reported(run: Run, ws: Workspace, parse_limit: int, assets_file: str) -> list[Any]:
    raw = _tracked(Path(ws.root, TRACKED_ASSETS), parse_limit)
    return raw if raw is not None else read_assets(ws, run.input_format, parse_limit, assets_file)


def _tracked(path: Path, limit: int) -> list[Any] | None:
    try:
        if path.stat().st_size > limit:
            return []
        doc = standard_json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, list) else []


def _asset(
    run: Run, ws: Workspace, n: int, item: dict[str, Any], files: dict[str, _File]
) -> Asset | None:
    """One reported asset, or None when it names nothing readable (it is left out).
    ``files``: the files (and sizes) this listing already looked up, by ``path``."""
    content_type = str(item.get("content_type") or JSON)
    content = item.get("content")
    file, inline, encoded = None, None, False
    if content_type == JSON:
        size = len(json.dumps(content))
    else:
        path = item.get("path")
        if isinstance(path, str) and run.input_format in DIRECTORY_FORMATS:
            if path not in files:
                file = os.path.join(ws.work, output_dir_name(run.input_format), path)
                files[path] = (file, _file_size(file, ws.work))
            file, found = files[path]
        elif isinstance(content, str):
            inline, encoded = content, item.get("encoding") == "base64"
            found = _inline_size(inline, encoded)
        else:
            found = None
        if found is None:
            return None
        size, content = found, None
    visual = item.get("visual")
    return Asset(
        id=f"{run.id}-asset-{n}",
        name=str(item.get("name") or f"asset-{n}"),
        content_type=content_type,
        created_at=run.ended_at or run.created_at,
        size=size,
        content=content,
        visual=visual if isinstance(visual, dict) else None,
        description=str(item.get("description") or ""),
        file=file,
        root=ws.work if file is not None else "",
        inline=inline,
        encoded=encoded,
    )


def _file_size(file: str, root: str) -> int | None:
    """The size of the regular file ``file``, if it really lies in ``root``: metadata
    only (``stat`` does not open: a FIFO cannot block it). ValueError: a NUL in the path."""
    try:
        if not confined(file, root):
            return None
        info = os.stat(file)
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _inline_size(content: str, encoded: bool) -> int | None:
    """The byte count of a content string (None: not valid base64). Its bytes last only
    this call: the string is part of the document, which the parse limit bounds."""
    data = _decoded(content, encoded)
    return None if data is None else len(data)


def _decoded(content: str, encoded: bool) -> bytes | None:
    if not encoded:
        return content.encode(errors="surrogatepass")
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):  # ValueError: a character beyond ASCII
        return None
