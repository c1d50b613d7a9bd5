#!/usr/bin/env python3
"""Chaos: every client pattern at the dashboard and the control socket while programs are killed at random.

    .venv/bin/python benchmarks/chaos.py            # the full profile (about 6 minutes on 2 cores)
    .venv/bin/python benchmarks/chaos.py --short    # about 90 s: run by .ci/run after the tests

A real daemon (temporary state dir, a free port, never 5000) supervises 20 programs under an open-files
limit of 1,024, which caps the dashboard at 512 connections (half its limit), so that the floods cross the
cap. Throughout, one program is killed with SIGKILL every 0.25-0.5 s and its restart timed from the child's
own start stamp (as ``web_load.py`` does; each followed by a bare spawn of the same child: the floor under
the same load), and ``foss-supervisor status`` runs every 0.5 s. After a quiet phase that gives the idle
figures, one phase per client pattern, then all of them at once:

    keepalive  wrk, 100 keep-alive connections, rotating over pages, API and static paths
    close      wrk, 100 connections with Connection: close on /favicon.ico (issue 15's wedge)
    wrk1000    wrk, 1,000 keep-alive connections
    conn1000   our own generator, 1,000 connections, each request's outcome known
    slowloris  connections trickling their headers, a line a second, never finishing
    sse        200 event streams (/api/events; at most 100 are served, the rest get 503)
    halfopen   connections that never send, or send half a request line and stop
    bodies     POSTs of 4 MB to command endpoints (with the token): all must be refused by size (413), or
               not admitted at all (the gate's 503 at the cap)
    resets     requests cut by an RST (SO_LINGER 0) mid-head, after a GET, mid-body
    schemathesis  schemathesis against /api/v1/openapi.json with the token (commands that would stop,
               reshape or shut down supervision excluded), checking for server errors
    control    on the control socket: silent connections, garbage lines, over-long lines, and a flood of
               300 connections from 10 processes (idle, `status` in a loop, never reading replies)
               past the daemon's connection caps: programs must still be restarted, `status` answer
    mixed      all of the above but wrk1000 and schemathesis, at once

Every loaded phase also runs 20 steady clients of our own (half keep-alive). The load processes run at nice
10: they stand for other machines' clients, and on 2 cores a client at the daemon's priority would measure how
the scheduler shares the CPU, not supervision. Asserted (exit 1 names what failed): every kill is followed by
a restart, with the restart p99 over all loaded phases' kills within 100 ms of the quiet phase's (or of a bare
spawn's p99 under the same load, when the machine itself is slower); every ``status`` answers within 1 s; no
admitted request is lost (a request written in full whose connection then ended without an answer: our
clients' ``lost``, wrk's read errors, event streams cut); no server error but 503, and no 4xx to a request for
a path that exists (our clients' and wrk's); every large body and over-long control line refused by size;
schemathesis finds no server error; ``/api/v1/health`` answers 200 within 2 s of each load's end (kills pause
meanwhile: a program restarting makes it say 503). Writes ``benchmarks/results/chaos[-short].md`` and
``.json``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chaos_report import Thresholds, check, markdown, summarize
from chaos_rig import CliProbe, Daemon, Killer, Phases, health_back_s, start_daemon, stop_daemon
from web_load import parse_wrk

HERE = Path(__file__).resolve().parent
LOAD_NICE = 10
# wrk counts answers by status, and the admission gate's 503s apart (by its text); ROTATE_LUA goes over paths
STATUS_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {}; gate = 0 end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  if status == 503 and body and string.find(body, "connection limit", 1, true) then gate = gate + 1 end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("codes")) do io.write(string.format("status %d %d\\n", code, n)) end
    io.write(string.format("gate %d\\n", t:get("gate")))
  end
end
"""
ROTATE_LUA = """
local paths = {"/api/v1/health", "/api/status", "/", "/favicon.ico", "/metrics", "/pipeline-management"}
local n = 0
request = function()
  n = n % #paths + 1
  return wrk.format(nil, paths[n])
end
"""
# commands schemathesis must not call with the token: they stop, reshape or end what the suite measures
UNSAFE_COMMANDS = r"^command_(shutdown|stop|restart|signal|scale|reload|config_write|config_restore)$"


@dataclass(frozen=True)
class Profile:
    phase_s: float
    quiet_s: float
    kill_every_s: tuple[float, float]
    examples: int  # schemathesis examples per operation


PROFILES = {
    "short": Profile(phase_s=4.0, quiet_s=8.0, kill_every_s=(0.25, 0.5), examples=4),
    "full": Profile(phase_s=20.0, quiet_s=20.0, kill_every_s=(0.25, 0.5), examples=10),
}
STEADY = {"requesters": {"connections": 20}}


@dataclass(frozen=True)
class Phase:
    name: str
    what: str
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    wrk: tuple[str, ...] = ()  # wrk's arguments but the URL's host part: "-c100", ..., "/path"
    schemathesis: bool = False


def phases() -> list[Phase]:
    bodies = {"workers": 4, "size": 4 * 1024 * 1024}
    control = {
        "control_silent": {"connections": 200},
        "control_garbage": {"workers": 2},
        "control_huge": {"workers": 1},
        # past the connection caps: idle, `status` in a loop, never reading; 10 processes share 300
        "control_flood": {"connections": 300, "processes": 10},
    }
    return [
        Phase("quiet", "nothing: the idle figures"),
        Phase("keepalive", "wrk -c100, keep-alive, rotating paths", STEADY, ("-c100", "ROTATE", "/")),
        Phase(
            "close",
            "wrk -c100 -H 'Connection: close' /favicon.ico",
            STEADY,
            ("-c100", "-H", "Connection: close", "/favicon.ico"),
        ),
        Phase("wrk1000", "wrk -c1000, keep-alive, rotating paths", STEADY, ("-c1000", "ROTATE", "/")),
        Phase("conn1000", "1,000 connections of our own, half keep-alive", {"requesters": {"connections": 1000}}),
        Phase("slowloris", "200 connections trickling headers", {**STEADY, "slowloris": {"connections": 200}}),
        Phase("sse", "200 event streams", {**STEADY, "sse": {"connections": 200}}),
        Phase("halfopen", "400 silent or half-request connections", {**STEADY, "half_open": {"connections": 400}}),
        Phase("bodies", "4 MB POSTs to commands, 4 at a time", {**STEADY, "bodies": bodies}),
        Phase("resets", "RST mid-request, 8 at a time", {**STEADY, "resets": {"workers": 8}}),
        Phase("schemathesis", "schemathesis on the OpenAPI, with the token", STEADY, schemathesis=True),
        Phase(
            "control",
            "control socket: 200 silent, garbage, 2 MiB lines, a flood of 300 from 10 processes",
            {**STEADY, **control},
        ),
        Phase(
            "mixed",
            "all at once (wrk -c100 close, 300 own, 100 slowloris, 200 SSE, ...)",
            {
                "requesters": {"connections": 300},
                "slowloris": {"connections": 100},
                "sse": {"connections": 200},
                "half_open": {"connections": 100},
                "bodies": {"workers": 2, "size": 4 * 1024 * 1024},
                "resets": {"workers": 4},
                "control_silent": {"connections": 100},
                "control_garbage": {"workers": 1},
                "control_huge": {"workers": 1},
            },
            ("-c100", "-H", "Connection: close", "/favicon.ico"),
        ),
    ]


def _nice() -> None:
    os.nice(LOAD_NICE)


class Runner:
    """Runs the phases against one daemon, with the killer and the CLI probe going all along."""

    def __init__(self, daemon: Daemon, profile: Profile, work: Path, seed: int) -> None:
        self.daemon, self.profile, self.work, self.seed = daemon, profile, work, seed
        self.phases = Phases()
        self.killer = Killer(daemon, self.phases, profile.kill_every_s, seed)
        self.probe = CliProbe(daemon, self.phases)
        (work / "status.lua").write_text(STATUS_LUA)
        (work / "rotate.lua").write_text(ROTATE_LUA + STATUS_LUA)

    def _spawn(self, name: str, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        out = self.work / f"{self.phases.name}-{name}.out"
        with out.open("wb") as f:
            proc = subprocess.Popen(
                argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_nice, cwd=self.work
            )
        return proc, out

    def _wrk(self, args: tuple[str, ...], seconds: float) -> list[str]:
        *opts, path = args
        script = self.work / ("rotate.lua" if "ROTATE" in opts else "status.lua")
        opts = [o for o in opts if o != "ROTATE"]
        return [
            "wrk",
            "-t1",
            *opts,
            "-H",  # every read needs a token (docs/security.md): wrk reads as the owner
            f"Authorization: Bearer {self.daemon.token}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            f"{self.daemon.base}{path}",
        ]

    def _schemathesis(self) -> list[str]:
        exe = Path(sys.executable).with_name("schemathesis")
        return [
            str(exe),
            "run",
            f"{self.daemon.base}/api/v1/openapi.json",
            "-H",
            f"Authorization: Bearer {self.daemon.token}",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            str(self.profile.examples),
            "--seed",
            str(self.seed),
            "--exclude-operation-id-regex",
            UNSAFE_COMMANDS,
            "--exclude-operation-id",
            "post_api_command",
            "--exclude-operation-id",
            "get_events",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--no-color",
        ]

    def run(self, phase: Phase) -> dict[str, Any]:
        print(f"chaos: phase {phase.name}: {phase.what}", file=sys.stderr, flush=True)
        self.phases.name = phase.name
        before = self.daemon.dashboard()
        started = time.monotonic()
        if phase.name == "quiet":
            time.sleep(self.profile.quiet_s)
            return {
                "name": phase.name,
                "what": phase.what,
                "ran_s": round(time.monotonic() - started, 1),
                "footprint": self.daemon.footprint(),
                "dashboard_restarts": self.daemon.dashboard()["spawns"] - before["spawns"],
            }
        seconds = self.profile.phase_s
        loads: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        if phase.schemathesis:
            loads["schemathesis"] = self._spawn("schemathesis", self._schemathesis())
        if phase.wrk:
            loads["wrk"] = self._spawn("wrk", self._wrk(phase.wrk, seconds))
        if phase.clients:
            spec = {
                "port": self.daemon.port,
                "token": self.daemon.token,
                "control": str(self.daemon.sock),
                "seconds": 600 if phase.schemathesis else seconds,
                "patterns": phase.clients,
            }
            loads["clients"] = self._spawn(
                "clients", [sys.executable, str(HERE / "chaos_clients.py"), json.dumps(spec)]
            )
        outputs: dict[str, Any] = {}
        failures: list[str] = []
        for name in sorted(loads, key=lambda n: n != "schemathesis"):  # schemathesis first: then stop the rest
            proc, out = loads[name]
            if name == "clients" and phase.schemathesis:
                proc.terminate()
            try:
                proc.wait(timeout=seconds + 60 if name != "schemathesis" else 600)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                failures.append(f"{phase.name}: {name} did not end in time")
            text = out.read_text(errors="replace")
            try:
                outputs[name] = self._parse(name, text, proc.returncode)
            except (ValueError, RuntimeError) as exc:
                failures.append(
                    f"{phase.name}: {name} exited {proc.returncode}, output not understood ({exc}): {text[-600:]}"
                )
        stopped = time.monotonic()
        self.phases.name = "between"
        self.killer.paused.set()  # a program restarting makes health 503: the programs' health, not the dashboard's
        try:
            back = health_back_s(self.daemon.port, stopped)
        finally:
            self.killer.paused.clear()
        after = self.daemon.dashboard()
        return {
            "name": phase.name,
            "what": phase.what,
            "ran_s": round(stopped - started, 1),
            "health_back_s": None if back is None else round(back, 3),
            "load": outputs,
            "dashboard_restarts": after["spawns"] - before["spawns"],
            "footprint": self.daemon.footprint(),  # after the load, with its connections closed
            "failures": failures,
        }

    @staticmethod
    def _parse(name: str, text: str, code: int | None) -> dict[str, Any]:
        if name == "wrk":
            return {**parse_wrk(text), "gate_503": sum(int(n) for n in re.findall(r"^gate (\d+)$", text, re.M))}
        if name == "clients":
            return dict(json.loads(text.strip().splitlines()[-1]))
        cases = re.search(r"^\s*(\d+) generated, (.*)$", text, re.M)
        if cases is None:
            raise RuntimeError("no summary in schemathesis' output")
        failures = re.findall(r"^\s*❌ (ST\d+ .*)$", text, re.M)
        return {
            "exit_code": code,
            "cases": int(cases.group(1)),
            "summary": cases.group(2).strip(),
            "failures": failures,
            "tail": text[-1500:] if code else "",
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", help="the CI profile (about 90 s)")
    ap.add_argument("--programs", type=int, default=20)
    ap.add_argument("--nofile", type=int, default=1024, help="the daemon's open-files limit (sets the cap)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--only", default="", help="comma-separated phases to run after the quiet one")
    ap.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="where chaos[-short].md/.json go (and, when an assertion fails, the run's logs)",
    )
    args = ap.parse_args()
    for tool in ("wrk", str(Path(sys.executable).with_name("schemathesis"))):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"chaos.py needs {tool} (wrk: apt-get install wrk; schemathesis: pip install -e '.[test]')"
            )
    profile = PROFILES["short" if args.short else "full"]
    wanted = set(filter(None, args.only.split(",")))
    plan = [p for p in phases() if p.name == "quiet" or not wanted or p.name in wanted]
    began, load_before = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="foss-chaos-") as d:
        work = Path(d)
        daemon = start_daemon(work, args.programs, args.nofile)
        runner = Runner(daemon, profile, work, args.seed)
        results: list[dict[str, Any]] = []
        try:
            runner.killer.start()
            runner.probe.start()
            for phase in plan:
                results.append(runner.run(phase))
            runner.phases.name = "end"
        finally:
            runner.killer.stopping.set()
            runner.probe.stopping.set()
            runner.killer.join(timeout=30)
            runner.probe.join(timeout=30)
            errors_logged = daemon.log_errors()
            code = stop_daemon(daemon)
        report = summarize(results, runner.killer, runner.probe)
        report.update(
            {
                "profile": "short" if args.short else "full",
                "programs": args.programs,
                "nofile": args.nofile,
                "cpus": os.cpu_count(),
                "seed": args.seed,
                "wall_s": round(time.monotonic() - began, 1),
                "loadavg_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # before, after
                "errors_logged": errors_logged,
                "daemon_exit_code": code,
            }
        )
        failed = check(report, Thresholds())
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / ("chaos-short" if args.short else "chaos")
        if failed:  # keep the logs and the load processes' outputs to look into
            kept = stem.with_name(stem.name + "-logs")
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(work, kept, ignore=shutil.ignore_patterns("*.sock", "child.py", "*.lua"))
            report["kept"] = str(kept)
    report["failed"] = failed
    text = markdown(report)
    stem.with_suffix(".md").write_text(text)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)
    if failed:
        print("chaos: FAILED:\n" + "\n".join(f"  - {f}" for f in failed), file=sys.stderr)
        raise SystemExit(1)
    print(f"chaos: all assertions held ({report['wall_s']:g} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
