"""A bulky reply (``config_show``: every program's every setting) is built and redacted on a worker thread, so
the supervision loop runs while thousands of strings are read; the reply is the same redacted reply. The
command context is a real, unstarted Daemon."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, TypeVar

from foss_supervisor.base.redact import Redactor
from foss_supervisor.commands import COMMANDS, answer
from foss_supervisor.config import parse_config
from foss_supervisor.daemon import Daemon

T = TypeVar("T")
PROGRAMS = 200


class WatchedRedactor(Redactor):
    """The real redactor, which also says when a reply's redaction has begun (from whichever thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Event()

    def data(self, value: T) -> T:
        self.reading.set()
        return super().data(value)


def test_the_loop_runs_while_the_whole_config_is_redacted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    programs = {
        f"p{i:03d}": {"command": ["sleep", "60"], "env": {"API_TOKEN": f"tok-{i:03d}-secret"}} for i in range(PROGRAMS)
    }
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"state_dir": str(state), "programs": programs}))
    config = parse_config(path.read_text(), path)
    redactor = WatchedRedactor()
    redactor.learn(config)
    ctx = Daemon(config, None, redactor=redactor)

    async def run() -> tuple[bool, Any]:
        replying = asyncio.create_task(answer(ctx, "config_show", {}))
        async with asyncio.timeout(60):
            while not redactor.reading.is_set():
                await asyncio.sleep(0)
            ran_meanwhile = not replying.done()  # this task had a turn while the reply was being redacted
            return ran_meanwhile, await replying

    ran_meanwhile, reply = asyncio.run(run())
    assert COMMANDS["config_show"].bulky
    assert ran_meanwhile
    shown = json.dumps(reply)
    assert len(reply["config"]["programs"]) == PROGRAMS
    assert "-secret" not in shown and "tok-" not in shown
    assert reply == Redactor().data(reply)  # nothing left that a redactor would change
