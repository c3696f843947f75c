"""Text from a request as the UTF-8 bytes written to a file, a command line or the store.

JSON's ``\\ud800`` escape is valid JSON but no Unicode character: a lone UTF-16 surrogate
that Python's parser keeps in a ``str`` and UTF-8 cannot encode. Every place that turns a
request's text into bytes asks ``encode``, so such text is refused as the client's error
(400, naming the field) before anything is made, not answered 500 halfway.
"""

from __future__ import annotations

from orchestrator.errors import Invalid


def encode(text: str, what: str) -> bytes:
    """``text`` in UTF-8; ``Invalid`` naming ``what`` (never the text) if it holds a lone
    surrogate."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise Invalid(
            f"{what} is not valid Unicode: a lone surrogate (U+{code:04X}) at character"
            f" {exc.start}, from a \\u escape with no pair"
        ) from None
