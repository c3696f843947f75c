"""The HTTP API, shaped like Nextmv Cloud's so the official SDK works unchanged.

One router module per resource; ``errors`` maps the domain's errors to HTTP
in one place; ``wire`` turns domain objects into the JSON the SDK parses.
"""
