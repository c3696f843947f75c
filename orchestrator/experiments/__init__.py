"""Input sets and batch experiments: run every input x target x option set x repetition
locally, then summarize the runs, compare candidates against a baseline, gate CI on
regressions and render a self-contained HTML report.

``summary``, ``gate`` and ``report`` are pure functions of ``RunFacts``: no I/O, so the
same numbers come out of the CLI, the API and the tests.
"""
