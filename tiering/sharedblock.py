"""A block of bytes that every worker process of one server sees: this process's memory when
there is one worker, a named POSIX shared-memory block (/dev/shm) when there are several.

Shared memory, never a file on the cache disk: a memory-mapped page of a failing disk raises
SIGBUS. The server's first process creates the block and owns it (unlinks it at exit); workers
attach by name. `lock()` makes a read-modify-write atomic across the threads of this process and
across processes: a thread lock, then `flock` on the block's descriptor (flock belongs to an
open file description, which each attaching process has its own of, so it excludes processes
but not the threads sharing one).
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from multiprocessing import resource_tracker, shared_memory


class SharedBlock:
    """`size` bytes, zeroed at creation: private (name None) or named and shared."""

    def __init__(self, size: int, name: str | None = None, create: bool = False) -> None:
        self._shm: shared_memory.SharedMemory | None = None
        self._lock = threading.Lock()
        if name is None:
            self.buf: memoryview = memoryview(bytearray(size))
        else:
            self._shm = shared_memory.SharedMemory(name, create, size)
            assert self._shm.buf is not None
            self.buf = self._shm.buf
            if not create:
                # Python 3.11 registers every attaching process with the resource tracker,
                # which would unlink the block when a worker exits; its creator owns it.
                resource_tracker.unregister(self._shm._name, "shared_memory")  # type: ignore[attr-defined]
        self.name = name

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            if self._shm is None:
                yield
                return
            descriptor: int = self._shm._fd  # type: ignore[attr-defined]
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def close(self, unlink: bool = False) -> None:
        if self._shm is not None:
            self.buf.release()
            self._shm.close()
            if unlink:
                self._shm.unlink()
