"""Running model processes: containment (cgroups), supervision (sandbox) and the
single mapping from a finished process to a run status (outcome).

Split this way so the executor never touches pids, signals or cgroup files: it
hands a ``ProcessSpec`` to ``Sandbox.start`` and a ``ProcessResult`` to ``outcome``.
"""
