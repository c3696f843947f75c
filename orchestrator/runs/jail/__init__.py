"""The jail every model runs in: a small standard-library-only program.

The daemon starts it once as a *zygote* (``python -I -S``, so nothing from the
environment or site-packages is loaded). For each run the zygote clones a
*standby* with ``CLONE_PARENT`` (so the standby, and the model it becomes, is the
daemon's own child: pidfd, ``wait4`` rusage and exit status work as for Popen).
A standby joins its cgroup and builds everything that does not depend on the
run -- namespaces (a cgroup namespace rooted at its group among them), a private
root of read-only binds, a hidden ``/proc``, fresh mounts of its own cgroups, the
base Landlock ruleset -- then blocks on its pipe. The run's command (``marshal``) adds
only the run's own paths, drops to the run's uid, restricts itself and execs.

Nothing here may import anything but the standard library: this package is also
run on its own, with only ``orchestrator/runs`` on ``sys.path``.
"""
