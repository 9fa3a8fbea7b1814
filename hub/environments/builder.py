"""Building environments in the background: a bounded number at once, the rest queued, each
step's command and output in the environment's log, progress in the catalogue.

A build that fails (or runs past its time) leaves the environment `failed` with its log and
removes what it had made, so nothing half-built is ever offered: the catalogue offers `ready`
environments only. A build stopped with the service starts again when the service is back.
"""
from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from .catalog import Catalog
from .plan import Step

#: how much of the log a failure quotes in `error`
ERROR_TAIL = 600


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def read_log(path: str, offset: int, limit: int) -> tuple[bytes, int, int]:
    """(bytes from `offset`, at most `limit`; the offset after them; the log's size)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            offset = max(0, min(offset, size))
            fh.seek(offset)
            data = fh.read(limit)
    except FileNotFoundError:
        return b"", 0, 0
    return data, offset + len(data), size


def tail(path: str, limit: int) -> str:
    try:
        size = os.path.getsize(path)
    except OSError:
        return ""
    data, _, _ = read_log(path, max(0, size - limit), limit)
    return data.decode("utf-8", "replace")


class BuildFailed(Exception):
    pass


class Builder:
    def __init__(self, catalog: Catalog, *, max_concurrent: int, timeout: float, log_path: Callable[[str], str],
                 environ: dict[str, str], log):
        self.catalog = catalog
        self.max_concurrent = max(1, int(max_concurrent))
        self.timeout = timeout
        self.log_path = log_path
        self.environ = environ
        self.log = log
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="astrago-env-io")
        self.tasks: dict[str, asyncio.Task] = {}
        self.waiting: list[str] = []  # queued, in order
        self._slots: asyncio.Semaphore | None = None

    async def io_call(self, fn, *args):
        """`fn(*args)` on the area's file thread (logs, removing folders), off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    def queue_position(self, name: str) -> int | None:
        return self.waiting.index(name) + 1 if name in self.waiting else None

    def start(self, name: str, prefix: str, plan: list[Step]) -> None:
        """Queue the build of `name` (the row exists, status queued)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent)
        self.waiting.append(name)
        task = asyncio.ensure_future(self._build(name, prefix, plan))
        self.tasks[name] = task
        task.add_done_callback(lambda _t, n=name: self.tasks.pop(n, None) if self.tasks.get(n) is _t else None)

    async def cancel(self, name: str) -> None:
        """Stop a queued or running build (its process group is killed) and wait for it to end."""
        task = self.tasks.get(name)
        if task is None:
            return
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001 -- cancelled on purpose
            pass

    async def stop(self) -> None:
        for name in list(self.tasks):
            await self.cancel(name)
        self.io.shutdown(wait=True)

    async def _build(self, name: str, prefix: str, plan: list[Step]) -> None:
        log = self.log_path(name)
        try:
            await self._slots.acquire()
        except asyncio.CancelledError:
            self.waiting.remove(name)
            raise
        started = time.monotonic()
        try:
            self.waiting.remove(name)
            await self.io_call(_remove, prefix)  # what a crashed earlier build left
            await self.io_call(_append, log, f"== building {name} in {prefix}: {len(plan)} steps\n".encode())
            for number, step in enumerate(plan, 1):
                await self.catalog.change(name, status="building", step=number, steps=len(plan),
                                          step_title=step.title)
                output = await self._run_step(log, number, len(plan), step, started)
                if step is plan[-1]:
                    size = _size_from(output)
                    await self.catalog.change(name, size_bytes=size)
            await self.io_call(_append, log, f"== {name} is ready ({time.monotonic() - started:.0f} s)\n".encode())
            await self.catalog.change(name, status="ready", step_title="Ready", error="")
            self.log.info("environment %s built in %.0f s", name, time.monotonic() - started)
        except asyncio.CancelledError:
            # deleted (the row goes next) or the service stopping (the row stays queued/building, and the
            # build starts again from the beginning when the service is back): nothing half-built stays
            await self.io_call(_remove, prefix)
            await self.io_call(_append, log, b"== stopped\n")
            raise
        except BuildFailed as exc:
            await self._failed(name, prefix, log, str(exc))
        except Exception as exc:  # noqa: BLE001 -- a build must end as failed, never hang in building
            self.log.exception("environment %s: build failed", name)
            await self._failed(name, prefix, log, f"The build hit an internal error: {exc}")
        finally:
            self._slots.release()

    async def _failed(self, name: str, prefix: str, log: str, why: str) -> None:
        try:
            await self.io_call(_remove, prefix)
            await self.io_call(_append, log, f"== failed: {why}\n".encode())
        finally:
            await self.catalog.change(name, status="failed", error=why)

    async def _run_step(self, log: str, number: int, steps: int, step: Step, started: float) -> bytes:
        header = f"\n== step {number} of {steps}: {step.title}\n$ {shlex.join(step.argv)}\n"
        await self.io_call(_append, log, header.encode())
        proc = await asyncio.create_subprocess_exec(
            *step.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=self.environ, start_new_session=True)
        output = bytearray()
        try:
            remaining = self.timeout - (time.monotonic() - started)
            await asyncio.wait_for(self._copy(proc, log, output), timeout=max(1.0, remaining))
            code = await proc.wait()
        except asyncio.TimeoutError:
            _kill_group(proc)
            await proc.wait()
            raise BuildFailed(f"Step {number} of {steps} ({step.title}) ran past the build's time limit of "
                              f"{self.timeout:g} s (c.EnvironmentsArea.build_timeout).") from None
        except BaseException:
            _kill_group(proc)
            await proc.wait()
            raise
        if code != 0:
            last = output[-ERROR_TAIL:].decode("utf-8", "replace").strip()
            raise BuildFailed(f"Step {number} of {steps} ({step.title}) failed with exit code {code}. The log "
                              f"ends with: {last}")
        return bytes(output)

    async def _copy(self, proc, log: str, output: bytearray) -> None:
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                return
            output.extend(chunk)
            del output[:-65536]  # only the end is quoted
            await self.io_call(_append, log, chunk)


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _size_from(output: bytes) -> int | None:
    for line in reversed(output.decode("utf-8", "replace").splitlines()):
        if line.startswith("size_bytes="):
            return int(line.split("=", 1)[1])
    return None
