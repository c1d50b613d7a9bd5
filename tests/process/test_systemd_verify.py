"""The shipped and rendered units checked by systemd itself: ``systemd-analyze verify`` and ``security``,
systemd/check-units.sh, the install module regenerating the shipped units, and Python with DuckDB under
``MemoryDenyWriteExecute`` (a real seccomp filter)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, need

from foss_supervisor.systemd.install import options_for
from foss_supervisor.systemd.units import SERVICE, render_units, shipped_units

SHIPPED = REPO / "systemd"


def analyze() -> str:
    """systemd-analyze, which checks the units as systemd reads them (the test fails without it)."""
    return need("systemd-analyze", "apt-get install -y systemd")


def test_regenerating_the_shipped_units_writes_exactly_them(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "foss_supervisor.systemd.install", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(out.stdout.splitlines()) == 4
    for rel in shipped_units():
        assert (tmp_path / rel).read_bytes() == (SHIPPED / rel).read_bytes()


def test_check_units_script_passes_on_the_shipped_units() -> None:
    analyze()
    result = subprocess.run([str(SHIPPED / "check-units.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   verify system" in result.stdout and "ok   verify user" in result.stdout
    assert "ok   security: exposure" in result.stdout


def test_check_units_script_fails_on_unknown_keys_and_weak_sandboxes(tmp_path: Path) -> None:
    analyze()
    copy = tmp_path / "systemd"
    shutil.copytree(SHIPPED, copy)
    user_unit = copy / "user" / SERVICE
    user_unit.write_text(user_unit.read_text().replace("[Install]", "[Install]\nWantedByy=default.target"))
    result = subprocess.run([str(copy / "check-units.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "FAIL verify user" in result.stdout and "WantedByy" in result.stdout
    assert "ok   verify system" in result.stdout

    weak = copy / SERVICE
    sandbox = ("Protect", "Private", "Restrict", "SystemCall")
    weak.write_text("".join(line for line in weak.read_text().splitlines(True) if not line.startswith(sandbox)))
    result = subprocess.run([str(copy / "check-units.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "FAIL security: exposure" in result.stdout


def _verify(tmp_path: Path, files: dict[str, str], *, user: bool = False) -> subprocess.CompletedProcess[str]:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    args = [analyze(), "verify", "--man=no", "--generators=no", *(["--user"] if user else [])]
    return subprocess.run(
        [*args, *(str(tmp_path / n) for n in files)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )


@pytest.mark.parametrize("variant", ["system", "system-root", "user"])
def test_units_rendered_for_this_installation_verify_cleanly(tmp_path: Path, variant: str) -> None:
    """The real console script of this venv and the embedded config: paths that exist on this machine."""
    opts, _ = options_for(None, user_mode=variant == "user", run_as_root=variant == "system-root")
    assert os.access(opts.exec_argv[0], os.X_OK)
    files = render_units(opts)
    result = _verify(tmp_path, files, user=variant == "user")
    assert (result.returncode, result.stderr) == (0, "")
    if variant == "system":
        security = subprocess.run(
            [analyze(), "security", "--offline=true", str(tmp_path / SERVICE)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        line = next(x for x in security.stdout.splitlines() if "Overall exposure level" in x)
        assert float(line.split(":")[1].split()[0]) <= 2.0, line


# systemd 252's MemoryDenyWriteExecute=yes is this seccomp filter: mmap(PROT_WRITE|PROT_EXEC), and
# mprotect/pkey_mprotect adding PROT_EXEC, fail with EPERM. The launcher installs it and execs the check.
MDWE_LAUNCHER = textwrap.dedent(
    """
    import ctypes, os, struct, sys
    LD, JEQ, AND, RET = 0x20, 0x15, 0x54, 0x06
    ALLOW, DENY = 0x7FFF0000, 0x00050000 | 1
    prog = [
        (LD, 0, 0, 4), (JEQ, 0, 13, 0xC000003E),
        (LD, 0, 0, 0), (JEQ, 4, 0, 9), (JEQ, 6, 0, 10), (JEQ, 5, 0, 329), (RET, 0, 0, ALLOW), (RET, 0, 0, ALLOW),
        (LD, 0, 0, 32), (AND, 0, 0, 6), (JEQ, 5, 4, 6),
        (LD, 0, 0, 32), (AND, 0, 0, 4), (JEQ, 2, 1, 4),
        (RET, 0, 0, ALLOW), (RET, 0, 0, ALLOW), (RET, 0, 0, DENY),
    ]
    buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    fprog = Fprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0):  # NO_NEW_PRIVS, SECCOMP
        raise OSError(ctypes.get_errno(), "seccomp")
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
    """
)


MDWE_CHECK = textwrap.dedent(
    """
    import mmap
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        raise SystemExit("the W^X filter is not in force")
    except PermissionError:
        pass
    import aiohttp, duckdb, jinja2, psutil, structlog, yaml
    import foss_supervisor.daemon
    con = duckdb.connect()
    con.execute("create table t as select range i, random() r from range(200000)")
    assert con.execute("select count(*), sum(i) from t").fetchone() == (200000, 19999900000)
    assert con.execute("select regexp_matches('abc', 'b.'), list_sort([3, 1, 2])").fetchone() == (True, [1, 2, 3])
    print("survived")
    """
)


@pytest.mark.skipif(platform.machine() != "x86_64" or sys.platform != "linux", reason="x86_64 seccomp filter")
def test_python_and_duckdb_survive_memory_deny_write_execute() -> None:
    """Why the unit can say MemoryDenyWriteExecute=yes (DuckDB has no JIT; CPython needs no W+X pages)."""
    result = subprocess.run(
        [sys.executable, "-c", MDWE_LAUNCHER, MDWE_CHECK], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "survived", result.stderr
