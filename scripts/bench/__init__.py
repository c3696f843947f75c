"""orch benchmark: every figure next to a baseline measured in the same run.

Run it from the repository root::

    .venv/bin/python scripts/bench            # full run, a few minutes; targets enforced
    .venv/bin/python scripts/bench --quick    # a few iterations, < 60 s; targets not enforced
    .venv/bin/python scripts/bench --json OUT --only latency cpu

It starts a daemon (``python -m orchestrator daemon run``, through ``harness``, the same
harness the tests use) on a temporary home whose ``config.toml`` sets ``concurrency =
<cores>`` and ``max_upload_mb = 2048``, pushes the tiny models of ``scripts/bench_models/``
and runs the scenarios, one module each:

- ``latency``: submit → result of a trivial echo model against running it directly
  (python and a shell script).
- ``throughput``: runs/s of a 20 ms sleeping model against ``xargs -P <cores>``;
  ``cpu``: the same with a ~40 ms CPU-bound model, and the CPU each run costs the
  daemon, the model and the client.
- ``sdk``: the vendor's local runner on the same echo model, the peer to beat.
- ``cli_timings``: ``orch --version``, ``orch app list`` and ``orch app run --wait``.
- ``push``: the push directory and ``orch app push``.
- ``experiment``, ``large`` (1 GiB input), ``state`` (100,000 runs in the database).

The table goes to stdout and the figures to ``--json`` (default ``bench-results.json``).
Exit status: 0 if every target is met (always, with ``--quick``), 1 if a target is missed,
2 if a scenario could not run. The daemon's pid and home are printed to stderr at start,
for attaching a profiler (``py-spy record -p PID``).
"""
