"""Fixed-duration model: reads {"seconds": s} on stdin, sleeps s, answers {"slept": s}."""

import json
import sys
import time

seconds = float(json.load(sys.stdin).get("seconds", 0.02))
time.sleep(seconds)
json.dump({"slept": seconds}, sys.stdout)
