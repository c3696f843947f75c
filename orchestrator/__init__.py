"""orch: a local, offline twin of Nextmv Cloud custom apps.

Layers, bottom up (imports only ever point down this list):
``models``/``errors``/``ids``/``config`` → ``store`` → ``packaging``/``registry``/
``runs``/``experiments`` → ``api`` → ``client`` → ``cli``.
"""

__version__ = "0.1.0"
