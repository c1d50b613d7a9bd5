"""A ping answer is ours only when it carries the instance id the lock holder wrote (pure, on a real lock file)."""

from __future__ import annotations

import os
from pathlib import Path

from foss_supervisor.base.pidfile import PidFile, answers_as_holder
from foss_supervisor.daemon.instance import LOCK_NAME


def test_a_ping_answer_is_ours_only_with_the_lock_holders_instance_id(tmp_path: Path) -> None:
    pidfile = PidFile(tmp_path / "foss-supervisor.pid")
    assert pidfile.holders() == set() and not answers_as_holder({"pid": os.getpid(), "instance": ""}, pidfile)
    pidfile.acquire()
    try:
        assert pidfile.holders() == {os.getpid()}
        assert (tmp_path / LOCK_NAME).read_text().strip() == pidfile.instance_id != ""
        assert answers_as_holder({"pid": os.getpid(), "instance": pidfile.instance_id}, pidfile)
        assert not answers_as_holder({"pid": os.getpid(), "instance": "f" * 32}, pidfile)  # forged id
        assert not answers_as_holder({"pid": os.getpid() + 1, "instance": pidfile.instance_id}, pidfile)
        assert not answers_as_holder(None, pidfile)
    finally:
        pidfile.release()
    assert not answers_as_holder({"pid": os.getpid(), "instance": pidfile.instance_id}, pidfile)
