"""Execution backends (see ``runs/backend.py``): ``local`` runs models on this machine."""
