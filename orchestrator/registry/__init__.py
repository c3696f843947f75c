"""Apps, executables, versions, instances and the pointers between them.

One module per operation family: ``apps``, ``push``, ``versions``,
``instances``, ``promote``; ``resolve`` answers the single question "which
executable does a run use"; ``gc`` drops packages nothing points at.
"""
