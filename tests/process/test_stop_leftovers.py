"""``stop`` ends the programs a daemon left behind (recorded in children.json, checked by start time) before
it says it succeeded; a real stray process, ended by PID."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import PY

from foss_supervisor.base.procinfo import identity_of
from foss_supervisor.cli.lifecycle import _programs_gone
from foss_supervisor.config import load_config


def test_programs_left_after_the_daemon_are_stopped_before_success_is_said(tmp_path: Path) -> None:
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(f"state_dir: {tmp_path / 'state'}\nprograms: {{}}\n")
    config = load_config(cfg_path, {})
    config.state_dir.mkdir()
    stray = subprocess.Popen([PY, "-c", "import time; time.sleep(300)"], start_new_session=True)
    try:
        ident = identity_of(stray.pid)
        assert ident is not None
        (config.state_dir / "children.json").write_text(json.dumps({"a": ident.as_dict()}))
        assert _programs_gone(config) is True
        assert stray.wait(timeout=15) != 0  # it was ended, not left running
        assert _programs_gone(config) is True  # nothing recorded any more: nothing to do
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait(timeout=5)
