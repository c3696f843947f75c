"""Large-input model: reads stdin in 1 MiB chunks and answers {"bytes": n}."""

import json
import sys

CHUNK = 1024 * 1024
total = 0
read = sys.stdin.buffer.read
while chunk := read(CHUNK):
    total += len(chunk)
json.dump({"bytes": total}, sys.stdout)
