"""Room on a real small state filesystem (a tmpfs): exports refused over the exports budget and under the
free-space floor, and the daemon's warnings (``status``, ``/health``: degraded) saying it is nearly full."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import fill, need_root, tmpfs

from foss_supervisor.base.diskroom import export_refusal, floor_refusal, room_warning
from foss_supervisor.config import parse_config
from foss_supervisor.daemon import Daemon


def test_a_small_state_filesystem_refuses_exports_and_warns(tmp_path: Path) -> None:
    need_root("mounts a tmpfs")
    with tmpfs(tmp_path / "state", "16m") as state:
        exports = state / "exports"
        exports.mkdir()
        config = tmp_path / "config.yaml"
        daemon = Daemon(parse_config(f"state_dir: {state}\nprograms: {{}}\n", config), None)
        assert export_refusal(state, exports) == "" and room_warning(state) == ""
        assert not any("nearly full" in w for w in daemon.warnings)
        (exports / "unfetched.parquet").write_bytes(os.urandom(5 * 1024 * 1024))  # over a quarter of 16 MiB
        assert export_refusal(state, exports).startswith("the exports folder holds 5.0 MiB")
        assert floor_refusal(state) == ""  # the floor is not crossed by that
        (exports / "unfetched.parquet").unlink()
        filler = fill(state)
        try:
            assert "under its floor" in export_refusal(state, exports) and "under its floor" in floor_refusal(state)
            warning = room_warning(state)
            assert warning.startswith(f"the state filesystem ({state}) is nearly full")
            assert warning in daemon.warnings  # what status and /health list (degraded)
        finally:
            filler.unlink()
        assert export_refusal(state, exports) == "" and room_warning(state) == ""
