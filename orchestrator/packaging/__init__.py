"""Everything about app packages: the ``app.yaml`` manifest, building a package on the
client, unpacking a (hostile until proven otherwise) package in the daemon, and the
per-requirements Python environments packages run in.

Import the submodules directly; this package re-exports nothing so that the CLI can
build packages without pulling in the daemon-side code.
"""
