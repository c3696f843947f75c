"""A run's assets (Nextmv's ``assets`` convention): what they are and their bytes.

A model reports assets as a list of ``{name, content_type, content, visual?,
description?}``: a top-level ``assets`` in a JSON output, or the manifest's assets
file (``outputs/assets.json``) for folder formats; a tracked run may upload them
apart (``tracked.TRACKED_ASSETS``). ``content_type`` ``json`` (the default) holds
JSON ``content``. Any other content type is binary: the bytes of ``path`` (a file
of a folder output, relative to the output folder) or of ``content`` (a string;
base64 when ``encoding`` is ``base64``).

Ids are the run's id plus the position in the list: the list never changes once the
run finished.
"""

from __future__ import annotations

import base64
import binascii
import json
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


@dataclass(frozen=True)
class Asset:
    id: str
    name: str
    content_type: str
    created_at: str
    size: int
    content: Any
    """The JSON value of a json asset; None for binary ones (see ``data``)."""
    data: bytes | None
    visual: dict[str, Any] | None = None
    description: str = ""

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
        return self.data if self.data is not None else json.dumps(self.content).encode()


def run_assets(run: Run, ws: Workspace, parse_limit: int, assets_file: str) -> list[Asset]:
    """Every asset the run reported, in order (blocking: run it off the loop)."""
    raw = _tracked(Path(ws.root, TRACKED_ASSETS), parse_limit)
    if raw is None:
        raw = read_assets(ws, run.input_format, parse_limit, assets_file)
    made = (_asset(run, ws, n, item) for n, item in enumerate(raw) if isinstance(item, dict))
    return [asset for asset in made if asset is not None]


def find(assets: list[Asset], run: Run, asset_id: str) -> Asset:
    for asset in assets:
        if asset.id == asset_id:
            return asset
    raise NotFound(f"asset {asset_id!r} not found in run {run.id!r}")


def _tracked(path: Path, limit: int) -> list[Any] | None:
    try:
        if path.stat().st_size > limit:
            return []
        doc = standard_json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, list) else []


def _asset(run: Run, ws: Workspace, n: int, item: dict[str, Any]) -> Asset | None:
    content_type = str(item.get("content_type") or JSON)
    content, data = item.get("content"), None
    if content_type != JSON:
        data = _binary(run, ws, item)
        if data is None:
            return None
        content = None
    size = len(data) if data is not None else len(json.dumps(content))
    visual = item.get("visual")
    return Asset(
        id=f"{run.id}-asset-{n}",
        name=str(item.get("name") or f"asset-{n}"),
        content_type=content_type,
        created_at=run.ended_at or run.created_at,
        size=size,
        content=content,
        data=data,
        visual=visual if isinstance(visual, dict) else None,
        description=str(item.get("description") or ""),
    )


def _binary(run: Run, ws: Workspace, item: dict[str, Any]) -> bytes | None:
    """A binary asset's bytes; None when it names nothing readable (it is left out)."""
    path = item.get("path")
    if isinstance(path, str) and run.input_format in DIRECTORY_FORMATS:
        folder = Path(ws.work, output_dir_name(run.input_format))
        file = folder / path
        if not confined(file, ws.work) or not file.is_file():
            return None
        return file.read_bytes()
    content = item.get("content")
    if not isinstance(content, str):
        return None
    if item.get("encoding") == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except binascii.Error:
            return None
    return content.encode()
