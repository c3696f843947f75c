"""``python -m orchestrator`` is the ``orch`` CLI (used to start the daemon in the background)."""

from orchestrator.cli.main import main

main()
