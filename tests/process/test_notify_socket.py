"""A ``ready: notify`` program's socket, with a real child and a real datagram: its path no longer depends on
the program's name or the state dir, and only the program's own uid (and root) may speak on it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

from helpers import PY, deep_dir, need_root, state, supervising, until, wait_until

from foss_supervisor.base.processstates import ProcessState
from foss_supervisor.config import parse_config
from foss_supervisor.core.readiness import NotifyListener

SENDER = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(sys.argv[2].encode(), sys.argv[1])
"""


async def test_a_notify_program_runs_whatever_its_name_and_state_dir(tmp_path: Path) -> None:
    name = "n" * 64  # the longest name the validator accepts
    code = "import os, socket, time; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
    code += "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET']); print(os.environ['NOTIFY_SOCKET'], flush=True); "
    code += "time.sleep(60)"
    state_dir = deep_dir(tmp_path, 100)
    text = f"state_dir: {state_dir}\nprograms:\n  {name}: {{command: ['{PY}', '-c', \"{code}\"], ready: notify}}\n"
    cfg = parse_config(text, tmp_path / "c.yaml", {})
    async with supervising(cfg) as (sup, sub):
        await until(sub, state(name, ProcessState.RUNNING))
        log = sup.processes[name].log_path
        await wait_until(lambda: log.exists() and log.read_text().strip(), 10, "the program's line")
        socket_path = log.read_text().split()[0]
    assert len(os.fsencode(socket_path)) < 64, socket_path  # far from sun_path's 107 bytes
    assert not Path(socket_path).exists()  # removed with its folder when the program stopped


async def test_only_the_programs_uid_and_root_may_notify(tmp_path: Path) -> None:
    need_root("it sends as other uids")
    ready = asyncio.Event()
    listener = NotifyListener(ready.set)
    await listener.open(owner_uid=65534)
    assert listener.path is not None
    try:
        # open the folder to everyone, to prove the credential check itself (0700 alone already keeps them out)
        os.chmod(listener.path.parent, 0o777)
        os.chmod(listener.path, 0o777)
        python = shutil.which("python3", path="/usr/bin:/bin") or PY

        def send(uid: int, text: str) -> None:
            subprocess.run([python, "-c", SENDER, str(listener.path), text], user=uid, check=True, timeout=30)

        send(65533, "READY=1")  # another local user
        await wait_until(lambda: listener.refused >= 1, 10, "the refusal")
        assert not listener.ready.done()
        send(65534, "STATUS=up\nREADY=1")  # the program's own user
        async with asyncio.timeout(10):
            await ready.wait()
        assert listener.status == "up" and listener.refused == 1
    finally:
        folder = listener.path.parent
        listener.close()
    assert not folder.exists()
