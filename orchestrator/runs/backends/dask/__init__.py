"""The dask backend: runs execute in orch's sandbox on the workers of a Dask cluster.

The daemon keeps the state, the API and the queue; each started run becomes one
Dask task (``resources={"orch": 1}``, so a worker started with ``--resources
orch=N`` never runs more than N). Who does what:

- ``backend.py``     the daemon's side: connect, prepare, start, collect, recover
- ``execution.py``   one run on the cluster: wait, cancel, a lost worker, a retry
- ``link.py``        the connection to the scheduler: what answers there, lost and made again
- ``cluster.py``     the cluster as the daemon sees it: workers, slots, lost workers
- ``shipping.py``    packages and inputs sent content-addressed (scattered once per hash)
- ``logs.py``        the run's stderr pulled from its worker into the daemon's run folder
- ``results.py``     a finished run's outputs written into the daemon's run folder
- ``protocol.py``    what travels between daemon, scheduler and workers (plain data)
- ``claims.py``      runs on the scheduler: the first start of a task wins, a rerun is refused,
                     and a model runs only while its claim holds (the daemon withdraws it)
- ``worker.py``      the task and the worker plugin (runs on the workers)
- ``runner.py``      one per worker process: the sandbox, the runs, cancel, the log reads
- ``cache.py``       the worker's cache (blobs, packages, inputs, environments, run folders)

Nothing in this package is imported unless the daemon is started with
``--executor dask://HOST:PORT``; scheduler, workers and daemon need ``orch[dask]``
installed (Dask deserializes tasks on the scheduler too).
"""
