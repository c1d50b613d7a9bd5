"""The one child primitive (``core/child.py``) with real processes: spawn into a new session, the exit seen
by the loop's child watcher, output into a sink as it arrives, stdin, env, cwd, passed descriptors, and the
one stop path. Programs, probes, hooks and the pipeline worker all start through it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.core.child import SPAWNS_AT_ONCE, Child, spawn

PY = sys.executable


class Collected:
    """An output sink that keeps each stream's bytes and whether it ended."""

    def __init__(self) -> None:
        self.data: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.ended: set[int] = set()

    def __call__(self, fd: int, chunk: bytes) -> None:
        if chunk:
            assert fd not in self.ended, "output after the end of its stream"
            self.data[fd] += chunk
        else:
            self.ended.add(fd)


async def finish(child: Child) -> None:
    """Whatever happened: the child's group ended and reaped, its pipes closed."""
    await asyncio.wait_for(child.stop(), 10)
    await child.release()


async def test_output_goes_to_the_sink_by_stream_and_the_exit_comes_from_the_watcher() -> None:
    out = Collected()
    code = "import sys; sys.stdout.write('out' * 50000); sys.stderr.write('err'); raise SystemExit(7)"
    child = await spawn([PY, "-c", code], output=out)
    try:
        assert await asyncio.wait_for(child.wait(), 20) == 7
        await child.release()
        assert bytes(out.data[1]) == b"out" * 50000 and bytes(out.data[2]) == b"err"
        assert out.ended == {1, 2} and child.closed.done() and child.exited_at > 0
        assert os.getpgid(os.getpid()) != child.pid  # it led a session of its own
    finally:
        await finish(child)


async def test_the_exit_is_seen_while_a_grandchild_still_holds_the_pipes() -> None:
    """A pipe held open by what the child left running must not hide the child's death."""
    code = f"import subprocess; subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)']); print('x', flush=True)"
    child = await spawn([PY, "-c", code], output=Collected())
    try:
        assert await asyncio.wait_for(child.wait(), 20) == 0
        assert not child.closed.done()  # the grandchild holds stdout: only the group's end closes it
        outcome = await asyncio.wait_for(child.stop(), 10)
        assert outcome.exit_code == 0 and not outcome.killed
        await asyncio.wait_for(child.closed, 10)  # the SIGKILL to the group ended the grandchild
    finally:
        await finish(child)


async def test_stdin_env_cwd_and_passed_descriptors(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    out = Collected()
    code = (
        "import os, sys; data = sys.stdin.buffer.read(); "
        "os.write(int(os.environ['FD']), data[:1000][::-1]); "
        "print(os.environ['WHO'], os.getcwd(), len(data))"
    )
    try:
        child = await spawn(
            [PY, "-c", code],
            env={**os.environ, "WHO": "probe", "FD": str(write_end)},
            cwd=tmp_path,
            output=out,
            stdin=True,
            pass_fds=(write_end,),
        )
        os.close(write_end)
        write_end = -1
        body = b"0123456789" * 100_000  # larger than a pipe's buffer: written as the child reads
        child.write(body)
        child.close_stdin()
        assert await asyncio.wait_for(child.wait(), 20) == 0
        await child.release()
        assert out.data[1].decode().split() == ["probe", str(tmp_path), str(len(body))]
        got = b""
        while chunk := os.read(read_end, 1 << 20):
            got += chunk
        assert got == body[:1000][::-1]
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


async def test_a_write_to_a_child_that_never_reads_is_dropped_not_raised() -> None:
    child = await spawn([PY, "-c", "import os; os.close(0)"], stdin=True)
    try:
        assert await asyncio.wait_for(child.wait(), 20) == 0
        for _ in range(10):
            child.write(b"x" * 100_000)
        child.close_stdin()
    finally:
        await finish(child)


async def test_a_fleet_spawned_together_forks_a_few_per_loop_step() -> None:
    """100 spawns asked for at once: at most SPAWNS_AT_ONCE forks between two turns of another task on the loop
    (the kernel's list of this thread's children, read at each turn), so the loop never spends one step on
    all of them."""
    children = f"/proc/self/task/{threading.get_native_id()}/children"
    seen: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            with open(children) as f:
                seen.append(len(f.read().split()))
            await asyncio.sleep(0)

    watching = asyncio.create_task(watch())
    await asyncio.sleep(0)  # the watcher has read the list once: none yet
    spawned: list[Child] = []
    try:
        async with asyncio.timeout(60):
            spawned = list(await asyncio.gather(*(spawn(["sleep", "60"]) for _ in range(100))))
        done.set()
        await watching
        assert seen[0] == 0 and max(seen) <= 100
        steps = [later - earlier for earlier, later in itertools.pairwise(seen)]
        assert max(steps) <= SPAWNS_AT_ONCE, steps
    finally:
        done.set()
        for child in spawned:
            await finish(child)


async def test_a_spawn_that_cannot_start_raises_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await spawn([str(tmp_path / "no-such-program")], output=Collected(), stdin=True)
    with pytest.raises(PermissionError):
        await spawn([str(tmp_path)])
    with pytest.raises(FileNotFoundError):
        await spawn([PY, "-c", "pass"], cwd=tmp_path / "missing")


async def test_a_cancelled_wait_leaves_the_exit_for_the_stop() -> None:
    child = await spawn([PY, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(child.wait(), 0.2)
        assert not child.exited.cancelled()
        assert child.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGTERM
        assert not child.send_signal(signal.SIGTERM)  # reaped: never signalled again (the PID may be reused)
    finally:
        await finish(child)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.integers(0, 255).map(lambda c: ("exit", c)),
        st.sampled_from([signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGUSR1, signal.SIGABRT]).map(
            lambda s: ("signal", int(s))
        ),
    )
)
def test_every_exit_status_comes_back_exactly(how: tuple[str, int]) -> None:
    """Any exit code 0-255 reads as itself, a death by signal N as -N (what status and events show)."""
    kind, value = how
    code = f"raise SystemExit({value})" if kind == "exit" else f"import os; os.kill(os.getpid(), {value})"

    async def main() -> int:
        child = await spawn([PY, "-S", "-c", code])
        try:
            return await asyncio.wait_for(child.wait(), 20)
        finally:
            await finish(child)

    assert asyncio.run(main()) == (value if kind == "exit" else -value)
