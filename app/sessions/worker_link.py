"""The web process's link to one worker: the process (or thread), its pipe, and the threads that
write and read the pipe. Replies and frames go to the manager's event loop in pipe order."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from typing import TYPE_CHECKING, Any

from app.sessions.worker import worker_main

if TYPE_CHECKING:
    from app.sessions.manager import SessionManager

READ_BATCH = 64  # pipe messages handed to the event loop per wake-up, at most


class WorkerHandle:
    """One worker (process or thread), its pipe, and the threads that write and read the pipe.

    Writes go through a queue to a writer thread, never from the event loop: a pipe write
    blocks until the worker reads, and a worker busy for seconds (validating a 3.9 MB body,
    a long slice) would otherwise have frozen every client (issue 9). The queue keeps order.
    """

    def __init__(self, index: int, use_process: bool, manager: SessionManager) -> None:
        self.index = index
        self.manager = manager
        self.conn, child = multiprocessing.Pipe(duplex=True)
        self.outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.sessions = 0
        self.alive = True
        self.ready = False  # it imported and warmed up, and serves (its first message)
        self.taken: set[str] = set()  # sessions whose frame a client took, not yet told
        self.runner: multiprocessing.process.BaseProcess | threading.Thread
        if use_process:
            # spawn, not fork: the web process has threads (event loop, readers) by now.
            context = multiprocessing.get_context("spawn")
            self.runner = context.Process(
                target=worker_main, args=(child, manager.checkpoint_seconds),
                name=f"nn-worker-{index}", daemon=True,
            )
        else:
            self.runner = threading.Thread(
                target=worker_main, args=(child, manager.checkpoint_seconds),
                name=f"nn-worker-{index}", daemon=True,
            )
        self.runner.start()
        if use_process:
            # Only the child uses its end: closing ours lets recv() see EOF when it exits.
            child.close()
        self.reader = threading.Thread(
            target=self._read, name=f"nn-worker-{index}-reader", daemon=True
        )
        self.reader.start()
        self.writer = threading.Thread(
            target=self._write, name=f"nn-worker-{index}-writer", daemon=True
        )
        self.writer.start()

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue one message for the worker (thread-safe, never blocks; order is kept)."""
        self.outbox.put(message)

    def _write(self) -> None:
        """Write queued messages to the pipe until the sentinel (None) or a closed pipe."""
        while True:
            message = self.outbox.get()
            if message is None:
                return
            try:
                self.conn.send(message)  # this thread is the pipe's only writer: no lock
            except (OSError, ValueError):
                return  # the worker is gone: the reader sees EOF and reports it

    def tell_taken(self, session_id: str) -> None:
        """Runs on the event loop: the worker may build this session's next frame.

        Batched: one pipe message per pass of the event loop, however many clients took one.
        """
        if not self.taken:
            self.manager.loop.call_soon(self._flush_taken)
        self.taken.add(session_id)

    def _flush_taken(self) -> None:
        taken, self.taken = list(self.taken), set()
        if self.alive:
            with contextlib.suppress(OSError):
                self.send(("taken", taken))

    def _read(self) -> None:
        """Hand every message to the event loop, in order, until the pipe closes.

        Checkpoints never reach the event loop: they go to the storage's writer from this
        thread, as they arrive, so one is handed over before any later reply is dispatched.
        """
        loop = self.manager.loop
        while True:
            try:
                batch = self._receive([])
                # Whatever else is already waiting goes in the same wake-up of the loop.
                while len(batch) < READ_BATCH and self.conn.poll():
                    self._receive(batch)
            except (EOFError, OSError, TypeError):
                # The worker ended and closed its end of the pipe; or stop() gave up waiting
                # for this thread and closed ours mid-read (multiprocessing then reads from a
                # None handle: TypeError).
                break
            if not batch:
                continue
            try:
                loop.call_soon_threadsafe(self.manager.dispatch_all, batch)
            except RuntimeError:
                return  # the event loop is closed: nobody is left to tell
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self.manager.worker_lost, self)

    def _receive(self, batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Read one message: a checkpoint goes to the writer, anything else into `batch`."""
        message = self.conn.recv()
        if message[0] == "checkpoint":
            self.manager.on_checkpoint(message[1])
        elif message[0] == "ready":
            self.ready = True
        else:
            batch.append(message)
        return batch

    def stop(self, timeout: float) -> None:
        """Ask the worker to stop and wait for it; its closed pipe end then ends the reader."""
        self.send(("stop",))
        self.outbox.put(None)
        self.runner.join(timeout)
        if isinstance(self.runner, multiprocessing.process.BaseProcess) and self.runner.is_alive():
            self.runner.terminate()
            self.runner.join(timeout)
        self.reader.join(timeout)
        self.writer.join(timeout)
        self.conn.close()
