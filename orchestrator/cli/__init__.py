"""The ``orch`` command line: domain > entity > action, with the nextmv CLI's flags."""
