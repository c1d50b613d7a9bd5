#!/usr/bin/env python3
"""Soak and fault injection: a real daemon with 50 programs, a loaded dashboard and a pipeline, under faults.

    python benchmarks/soak.py --profile short     # a few minutes; run by tests/e2e/test_soak.py
    python benchmarks/soak.py --profile long      # on demand: thousands of faults

Faults, in a seeded random order: SIGKILL of random children (in batches), SIGKILL of the daemon and
a fresh ``start``, SIGSTOP/SIGCONT of children and of the daemon, SIGKILL of the pipeline worker
mid-step, a stdout flood, a foreign process holding the dashboard port at start, a full log/state
disk (a real tmpfs, root only), slow and idle HTTP connections. Meanwhile a thread keeps GETting
the dashboard. After each fault the invariants are checked (:mod:`soak_checks`): no zombie, no
orphan, no program running twice, every program back in its wanted state within its backoff,
descriptors and memory flat, every pipeline run in the history. Only loopback is used; every loop
is bounded in count and time; everything started is ended by PID. Prints a Markdown table; exits 1
when anything was lost or a fault was not survived.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak_checks import Fleet, HttpLoad, SoakError, hold_connections

from foss_supervisor.control.client import call


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much of each fault; ``budget_s`` bounds the whole fault phase."""

    budget_s: float
    child_kill_batches: int  # each batch kills KILL_BATCH random children
    daemon_kills: int
    child_stops: int
    daemon_stops: int
    worker_kills: int
    floods: int
    port_holds: int
    disk_fills: int
    conn_rounds: int
    conns_per_round: int


PROFILES = {
    "short": Profile(
        budget_s=100,
        child_kill_batches=30,
        daemon_kills=3,
        child_stops=10,
        daemon_stops=3,
        worker_kills=2,
        floods=2,
        port_holds=1,
        disk_fills=2,
        conn_rounds=2,
        conns_per_round=200,
    ),
    "long": Profile(
        budget_s=3600,
        child_kill_batches=400,
        daemon_kills=40,
        child_stops=200,
        daemon_stops=40,
        worker_kills=20,
        floods=20,
        port_holds=10,
        disk_fills=20,
        conn_rounds=20,
        conns_per_round=500,
    ),
}
KILL_BATCH = 10
PROGRAMS = 50


@dataclasses.dataclass
class Tally:
    injected: int = 0
    survived: int = 0
    recoveries: list[float] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)


class Soak:
    def __init__(self, work: Path, profile: Profile, seed: int) -> None:
        self.work = work
        self.profile = profile
        self.rng = random.Random(seed)
        self.state = work / "state"
        self.port = _free_port()
        self.tmpfs = False
        self.tally: dict[str, Tally] = {}
        self.fleet = Fleet(self.state, self.port, work / "config.yaml")
        self.load = HttpLoad(self.port, self.state / "api-token")
        self.conns_held = 0
        self.run_ids: set[str] = set()
        self.mid_step_kills = 0
        self.gold_clean: list[Any] = []  # the gold tables after the first (clean) run

    # ------------------------------------------------------------------ set-up

    def setup(self) -> None:
        self.state.mkdir(parents=True)
        if os.geteuid() == 0:
            res = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(self.state)],
                capture_output=True,
                text=True,
                timeout=10,
            )
            self.tmpfs = res.returncode == 0
        sleeper = (
            "command: [sleep, '100000']\n    start_timeout: 0.2\n    start_retries: forever\n"
            "    backoff: {initial: 0, max: 2, jitter: 0.1}\n"
            "    log: {max_bytes: 256KB, backups: 1}\n"
        )
        flood = (
            f'command: [{sys.executable!r}, \'-c\', \'import sys; b = b"x" * 65535 + b"\\\\n"; '
            "w = sys.stdout.buffer.write; [w(b) for _ in iter(int, 1)]']\n    autostart: false\n"
            "    start_timeout: 0\n    log: {max_bytes: 1MB, backups: 1}\n"
        )
        body = [
            f"state_dir: {self.state}",
            f"data_dir: {self.work / 'data'}",
            f"dashboard: {{port: {self.port}}}",
            "log: {max_bytes: 1MB, backups: 2}",
            "pipelines:",
            "  orders: {on_new_files: false, demo_data: false}",
            "programs:",
        ]
        body += [f"  p{i:02d}:\n    {sleeper}" for i in range(PROGRAMS - 1)]
        body.append(f"  flood:\n    {flood}")
        self.fleet.config.write_text("\n".join(body) + "\n")
        self.fleet.start()
        landed = self.fleet.cli("demo-data", "--orders", "20000", "--seed", "3")
        if landed.returncode != 0:
            raise SoakError(f"demo-data failed: {landed.stderr[-500:]}")
        self.run_pipeline(wait=True)
        self.gold_clean = self.gold()
        self.fleet.check(wanted=self.wanted())
        self.load.start()

    def teardown(self) -> None:
        self.load.stop()
        self.fleet.stop()
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.state)], capture_output=True, timeout=10)

    def wanted(self) -> set[str]:
        return {f"p{i:02d}" for i in range(PROGRAMS - 1)}

    def run_pipeline(self, wait: bool) -> dict[str, Any]:
        run = call(self.fleet.socket, "pipeline_run", name="orders", wait=wait, timeout_s=300.0)
        self.run_ids.add(run["run_id"])
        return run  # type: ignore[no-any-return]

    def gold(self) -> list[Any]:
        """A fingerprint of every gold table: no new file lands after the clean run, so it must not change."""
        out = []
        for table in ("gold.daily_revenue", "gold.product_sales", "gold.customer_ltv"):
            sql = f"SELECT count(*), CAST(round(sum(revenue_usd), 2) AS VARCHAR) FROM {table}"
            out.append([table, *call(self.fleet.socket, "query", sql=sql, timeout_s=60.0)["rows"][0]])
        return out

    # ------------------------------------------------------------------ faults

    def fault_child_kill(self) -> float:
        pids = self.fleet.program_pids()
        victims = self.rng.sample(sorted(p for n, p in pids.items() if n in self.wanted()), KILL_BATCH)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        return self.fleet.check(wanted=self.wanted(), replaced=set(victims))

    def fault_child_stop(self) -> float:
        name, pid = self.rng.choice(sorted((n, p) for n, p in self.fleet.program_pids().items() if n != "flood"))
        os.kill(pid, signal.SIGSTOP)
        time.sleep(self.rng.uniform(0.05, 0.5))
        os.kill(pid, signal.SIGCONT)
        took = self.fleet.check(wanted=self.wanted())
        if self.fleet.program_pids().get(name) != pid:
            raise SoakError(f"{name} was restarted by a SIGSTOP/SIGCONT")
        return took

    def fault_daemon_stop(self) -> float:
        before = self.fleet.program_pids()
        os.kill(self.fleet.daemon_pid(), signal.SIGSTOP)
        time.sleep(self.rng.uniform(0.5, 2.0))
        os.kill(self.fleet.daemon_pid(), signal.SIGCONT)
        took = self.fleet.check(wanted=self.wanted())
        if self.fleet.program_pids() != before:
            raise SoakError("programs were restarted by a SIGSTOP/SIGCONT of the daemon")
        return took

    def fault_daemon_kill(self) -> float:
        os.kill(self.fleet.daemon_pid(), signal.SIGKILL)
        t0 = time.monotonic()
        self.fleet.start()
        self.fleet.check(wanted=self.wanted())
        return time.monotonic() - t0

    def fault_worker_kill(self) -> float:
        run = self.run_pipeline(wait=False)
        worker = self.fleet.wait_worker()
        if self.fleet.wait_step_running(run["run_id"], skip=self.rng.randint(0, 3)):  # mid-step, not idle
            self.mid_step_kills += 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)
        t0 = time.monotonic()
        self.fleet.wait_run_finished(run["run_id"])
        again = self.run_pipeline(wait=True)
        if again["status"] not in ("succeeded", "succeeded_with_warnings"):
            raise SoakError(f"the run after a worker kill ended {again['status']}: {again.get('error')}")
        return time.monotonic() - t0

    def fault_flood(self) -> float:
        call(self.fleet.socket, "start", names=["flood"], wait_s=10.0)
        worst = 0.0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # the daemon must keep answering while it drains the flood
            t = time.monotonic()
            call(self.fleet.socket, "ping", timeout_s=10.0)
            worst = max(worst, time.monotonic() - t)
            time.sleep(0.1)
        call(self.fleet.socket, "stop", names=["flood"], wait_s=10.0)
        self.fleet.check(wanted=self.wanted())
        return worst

    def fault_port_hold(self) -> float:
        os.kill(self.fleet.daemon_pid(), signal.SIGKILL)
        self.fleet.wait_daemon_gone()
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import socket, sys, time; s = socket.socket(); "
                "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                f"s.bind(('127.0.0.1', {self.port})); s.listen(); print('ok', flush=True); "
                "time.sleep(120)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            if holder.stdout.readline().strip() != "ok":
                listeners = subprocess.run(["ss", "-ltnp", f"sport = :{self.port}"], capture_output=True, text=True)
                raise SoakError(f"the port is still held after the daemon was killed: {listeners.stdout.strip()}")
            refused = self.fleet.cli("start")
            if refused.returncode == 0 or "port" not in (refused.stdout + refused.stderr).lower():
                raise SoakError(f"start with the port held: rc {refused.returncode}, {refused.stderr[-300:]}")
            self.fleet.check_nothing_left()  # the refused start ended the killed daemon's programs
        finally:
            holder.kill()
            holder.wait(timeout=10)
        t0 = time.monotonic()
        self.fleet.start()
        self.fleet.check(wanted=self.wanted())
        return time.monotonic() - t0

    def fault_disk_fill(self) -> float:
        if not self.tmpfs:
            raise _Skip("the state folder is not on a tmpfs (needs root and mount)")
        stderr_before = self.fleet.stderr_size()
        filler = _fill(self.state)
        try:
            self.fault_child_kill()  # children still come back while nothing can be written
            problems = self.fleet.problems()
            if not problems:
                raise SoakError("a full state disk is not shown in status (problems or warnings)")
        finally:
            filler.unlink()
        t0 = time.monotonic()
        self.fleet.wait_problems_cleared()
        if self.fleet.stderr_size() - stderr_before > 100_000:
            raise SoakError(f"stderr grew {self.fleet.stderr_size() - stderr_before} bytes on a full disk")
        return time.monotonic() - t0

    def fault_connections(self) -> float:
        n = self.profile.conns_per_round
        with hold_connections(self.port, idle=n // 2, slow=n - n // 2) as held:
            self.conns_held = max(self.conns_held, held())
            t0 = time.monotonic()
            self.load.get("/health", timeout_s=20.0)  # still answers while they are held
            took = time.monotonic() - t0
        self.fleet.check(wanted=self.wanted())
        return took

    # ------------------------------------------------------------------ the run

    def plan(self) -> list[str]:
        p = self.profile
        kinds = (
            ["child_kill"] * p.child_kill_batches
            + ["daemon_kill"] * p.daemon_kills
            + ["child_stop"] * p.child_stops
            + ["daemon_stop"] * p.daemon_stops
            + ["worker_kill"] * p.worker_kills
            + ["flood"] * p.floods
            + ["port_hold"] * p.port_holds
            + ["disk_fill"] * p.disk_fills
            + ["connections"] * p.conn_rounds
        )
        self.rng.shuffle(kinds)
        return kinds

    def run(self) -> None:
        deadline = time.monotonic() + self.profile.budget_s
        for kind in self.plan():
            if time.monotonic() > deadline:
                break
            tally = self.tally.setdefault(kind, Tally())
            fault: Callable[[], float] = getattr(self, f"fault_{kind}")
            tally.injected += KILL_BATCH if kind == "child_kill" else 1
            try:
                took = fault()
            except _Skip as skip:
                tally.injected -= 1
                tally.failures.append(f"skipped: {skip}")
                continue
            except (SoakError, OSError, TimeoutError) as exc:
                tally.failures.append(f"{type(exc).__name__}: {exc}")
                print(f"FAULT {kind} NOT SURVIVED: {exc}", file=sys.stderr, flush=True)
                with contextlib.suppress(SoakError, OSError, TimeoutError):
                    self.fleet.recover(self.wanted())
                continue
            tally.survived += KILL_BATCH if kind == "child_kill" else 1
            tally.recoveries.append(took)

    def report(self) -> tuple[str, int]:
        history = {r["run_id"] for r in call(self.fleet.socket, "pipeline_runs", name="orders", limit=10_000)}
        missing_runs = len(self.run_ids - history)
        gold = self.gold()
        lost = self.fleet.lost | {
            "pipeline runs missing from the history": missing_runs,
            "gold tables differing from the clean run": sum(a != b for a, b in zip(gold, self.gold_clean, strict=True)),
        }
        rows = ["| fault | injected | survived | worst recovery | median recovery |", "|---|---:|---:|---:|---:|"]
        for kind, t in sorted(self.tally.items()):
            worst = f"{max(t.recoveries):.3f} s" if t.recoveries else "-"
            median = f"{statistics.median(t.recoveries):.3f} s" if t.recoveries else "-"
            rows.append(f"| {kind} | {t.injected} | {t.survived} | {worst} | {median} |")
        fds, rss = self.fleet.resources
        lines = [
            *rows,
            "",
            f"- connections held at once: {self.conns_held}",
            f"- dashboard GETs under load: {self.load.ok} answered, {self.load.failed} failed "
            "(a GET fails while the daemon is killed and restarting, or the port is held)",
            f"- pipeline runs started: {len(self.run_ids)}, in the run history: {len(self.run_ids & history)}; "
            f"worker kills that hit a running step: {self.mid_step_kills}; gold after all faults: "
            + "; ".join(f"{t} {n} rows, {usd} USD" for t, n, usd in gold),
            f"- daemon descriptors over its last life: {fds[0]} -> {fds[1]}; RSS {rss[0] / 2**20:.0f} MB -> "
            f"{rss[1] / 2**20:.0f} MB",
            "- lost: " + ", ".join(f"{k}: {v}" for k, v in lost.items()),
        ]
        for kind, t in sorted(self.tally.items()):
            lines += [f"- {kind}: {f}" for f in t.failures[:5]]
        bad = sum(lost.values()) + sum(t.injected - t.survived for t in self.tally.values())
        return "\n".join(lines), bad


class _Skip(Exception):
    pass


def _fill(folder: Path) -> Path:
    filler = folder / "soak-filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        for _ in range(1 << 14):  # bounded: 1 GB at most
            try:
                f.write(chunk)
            except OSError:
                break
    return filler


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="short")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--budget-s", type=float, help="override the profile's time budget for the faults")
    args = ap.parse_args(argv)
    profile = PROFILES[args.profile]
    if args.budget_s:
        profile = dataclasses.replace(profile, budget_s=args.budget_s)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout's SIGTERM still runs the clean-up
    work = Path(tempfile.mkdtemp(prefix="foss-soak-"))
    soak = Soak(work, profile, args.seed)
    t0 = time.monotonic()
    try:
        soak.setup()
        soak.run()
        table, bad = soak.report()
    finally:
        soak.teardown()
        shutil.rmtree(work, ignore_errors=True)
    print(f"## Soak ({args.profile} profile, seed {args.seed}, {time.monotonic() - t0:.0f} s, {PROGRAMS} programs)\n")
    print(table)
    print(f"\nreproduce: python benchmarks/soak.py --profile {args.profile} --seed {args.seed}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
