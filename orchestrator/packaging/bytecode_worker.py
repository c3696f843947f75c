"""Byte-compile a package's modules: the child process ``bytecode.compile_tree`` starts.

Run as a script (``python -I -S bytecode_worker.py MEMORY_BYTES CPU_SECONDS``) by the
interpreter runs use, never imported by the daemon, so it uses the standard library only
(``-S``: no site-packages, no orch). It is started ahead and waits for the folder to
compile, one line on its stdin (none: it exits). It limits itself first: the
daemon is multi-threaded and starts no Python between fork and exec (``runs/launch.py``),
so there is no ``preexec_fn`` to do it there. What it limits is what compiling hostile
source costs: ~370 MB of memory per MB of source (a list literal of 4 million items), all
of it CPU. It prints one line: how many modules it compiled, how many failed, and how
many of those failed for want of memory.

What it imports (``py_compile``: ~10 ms) and what a new interpreter pays on its first
compile it does while it waits, off the push's path (``warm_up``).
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import py_compile
import resource
import sys


def limit(memory: int, cpu_seconds: int) -> None:
    """Address space (a module over it fails with MemoryError, the next ones go on), CPU
    as a backstop should the daemon die mid-compile (the daemon holds the wall-clock
    deadline, and lowers the priority of a long compile), no core dumps."""
    for number, soft, hard in (
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        ceiling = resource.getrlimit(number)[1]  # the daemon's own (ulimit): never raised
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(number, (soft, hard))


def warm_up() -> None:
    """Fault in the parser, the compiler and marshal while nobody waits: a new
    interpreter took ~8 ms longer to compile a small package than a warm one."""
    with open(__file__, "rb") as fh:
        marshal.dumps(compile(fh.read(), __file__, "exec", dont_inherit=True))
    importlib.util.cache_from_source(__file__)


def modules(root: str) -> list[str]:
    """The ``.py`` files compileall would compile (symlinked folders and ``__pycache__``
    are not entered), smallest first: when a limit stops the work, it has cost the
    biggest modules only."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith(".py") and os.path.isfile(path):
                found.append((os.path.getsize(path), path))
    return [path for _size, path in sorted(found)]


def compile_all(paths: list[str]) -> tuple[int, int, int]:
    """Each module as ``compileall`` would (``py_compile``); one that fails is left to fail
    (or, over the limit, to compile) at run time, as before."""
    compiled = failed = memory = 0
    for path in paths:
        try:
            py_compile.compile(path, doraise=True)
        except py_compile.PyCompileError as exc:
            failed, memory = failed + 1, memory + (exc.exc_type_name == "MemoryError")
        except (OSError, MemoryError) as exc:  # a pyc it cannot write; memory out elsewhere
            failed, memory = failed + 1, memory + isinstance(exc, MemoryError)
        else:
            compiled += 1
    return compiled, failed, memory


def main(argv: list[str]) -> int:
    limit(int(argv[1]), int(argv[2]))
    warm_up()
    line = sys.stdin.buffer.readline()
    if not line.endswith(b"\n"):
        return 0  # dismissed, or the daemon is gone
    print(*compile_all(modules(os.fsdecode(line[:-1]))), flush=True)
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv))  # the interpreter's finalization: ~10 ms a push would wait
