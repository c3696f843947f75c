"""JSON as the standard defines it, for documents that models and clients write.

Python's ``json`` reads more than JSON, and fails in more ways than ``ValueError``:

- it takes ``NaN``, ``Infinity`` and ``-Infinity`` (Python's ``json.dumps`` writes them
  for float("nan"), so models do). The API answers with a strict encoder, as any
  client's parser expects, so a run whose output held one answered 500 on every read;
- it raises ``RecursionError`` on a document nested a few thousand levels deep.

``loads`` turns both into the one error callers already handle (``ValueError``: "not
JSON"), so such an output is kept and served as text, like any other that does not
parse.
"""

from __future__ import annotations

import json
from typing import Any


def refuse_constant(constant: str) -> Any:
    """``parse_constant`` for ``json``: NaN, Infinity and -Infinity are no JSON values."""
    raise ValueError(f"{constant} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=refuse_constant)


def loads(data: bytes | str) -> Any:
    """The document in ``data``; ``ValueError`` when it is not standard JSON."""
    if isinstance(data, bytes):  # as json.loads reads bytes: UTF-8, -16 or -32, with a BOM
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    try:
        return _DECODER.decode(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
