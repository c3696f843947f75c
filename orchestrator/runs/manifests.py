"""Parsed manifests by executable id: an executable's app.yaml never changes."""

from __future__ import annotations

from typing import Any

from orchestrator.packaging.manifest import Manifest


class ManifestCache:
    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._cache: dict[str, Manifest] = {}

    def cached(self, exe_id: str) -> Manifest | None:
        return self._cache.get(exe_id)

    def get(self, exe_id: str, raw: dict[str, Any]) -> Manifest:
        manifest = self._cache.get(exe_id)
        if manifest is None:
            if len(self._cache) >= self._size:
                self._cache.pop(next(iter(self._cache)))
            manifest = self._cache[exe_id] = Manifest.from_dict(raw)
        return manifest
