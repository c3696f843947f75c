"""Trivial model: copies its JSON input to its output (standard library only)."""

import sys

sys.stdout.write(sys.stdin.read())
