"""The chaos suite's figures per phase, its assertions, and its Markdown table (see ``chaos.py``)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from chaos_rig import CliProbe, Kill, Killer

__all__ = ["Thresholds", "check", "markdown", "summarize"]

NOT_LOADED = ("start", "quiet", "between", "end")  # phase names of kills that are not under a load
HTTP_PATTERNS = ("requesters", "slowloris", "half_open", "sse", "bodies", "resets")
CONTROL_PATTERNS = ("control_silent", "control_garbage", "control_huge", "control_flood")


@dataclass(frozen=True, slots=True)
class Thresholds:
    restart_over_idle_ms: float = 100.0  # loaded restart p99 at most this over the quiet phase's (or the floor's)
    cli_max_s: float = 1.0  # every `status` answers within this
    health_back_s: float = 2.0  # /api/v1/health answers 200 within this of the load's end


def p99(values: list[float]) -> float:
    """The 99th percentile by nearest rank: with fewer than 100 values, the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _kills(kills: list[Kill]) -> dict[str, Any]:
    """Restart and floor figures (ms) of ``kills``; ``missed``: the programs whose kill had no restart."""
    times = [k.restart_ms for k in kills if k.restart_ms is not None]
    floors = [k.floor_ms for k in kills if k.floor_ms is not None]
    figures: dict[str, Any] = {"kills": len(kills), "missed": [k.name for k in kills if k.restart_ms is None]}
    if times:
        figures.update(
            median_ms=round(statistics.median(times), 1), p99_ms=round(p99(times), 1), max_ms=round(max(times), 1)
        )
    if floors:
        figures.update(floor_median_ms=round(statistics.median(floors), 1), floor_p99_ms=round(p99(floors), 1))
    return figures


def _cli(probe: CliProbe, phase: str) -> dict[str, Any]:
    walls = [p.wall_s for p in probe.probes if p.phase == phase]
    answers = [p.answer_s for p in probe.probes if p.phase == phase and p.answer_s is not None]
    lags = [p.lag_s for p in probe.probes if p.phase == phase and p.lag_s is not None]
    return {
        "probes": len(walls),
        "answer_max_ms": round(max(answers) * 1000, 1) if answers else None,
        "max_s": round(max(walls), 3) if walls else None,
        "median_s": round(statistics.median(walls), 3) if walls else None,
        "loop_lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
    }


def _http(load: dict[str, Any]) -> dict[str, Any]:
    """Requests and outcomes of one phase over our own clients and wrk (control patterns apart)."""
    status: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    busy = 0
    clients = load.get("clients", {})
    for name in HTTP_PATTERNS:
        tally = clients.get(name)
        if tally:
            status.update(tally["status"])
            errors.update(tally["errors"])
            busy += tally["notes"].get("busy", 0)
    # requests that exist and are allowed (our requesters' and wrk's): a 4xx to one of them is a wrong answer
    wrong = Counter({k: v for k, v in (clients.get("requesters") or {}).get("status", {}).items() if k[0] == "4"})
    for name in CONTROL_PATTERNS:
        if clients.get(name):
            errors["lost"] += clients[name]["errors"].get("lost", 0)
    wrk = load.get("wrk")
    if wrk:
        status.update({str(k): v for k, v in wrk["by_status"].items()})
        wrong.update({str(k): v for k, v in wrk["by_status"].items() if str(k)[0] == "4"})
        busy += wrk.get("gate_503", 0)
        kinds = wrk["socket_errors_by_kind"]
        errors["lost"] += kinds.get("read", 0)  # the request was written; the connection ended unanswered
        for kind in ("connect", "write", "timeout"):
            errors[f"wrk {kind}"] += kinds.get(kind, 0)
    answered = sum(status.values())
    ok = sum(v for k, v in status.items() if k.startswith(("2", "3")))
    server_errors = sum(v for k, v in status.items() if k.startswith("5") and k != "503")
    return {
        "answered": answered,
        "ok": ok,
        "s503": status.get("503", 0),
        "busy": busy,
        "server_errors": server_errors,
        "other": answered - ok - status.get("503", 0) - server_errors,
        "lost": errors.pop("lost", 0),
        "wrong_4xx": dict(wrong),
        "errors": {k: v for k, v in errors.items() if v},
        "by_status": dict(status),
    }


def summarize(results: list[dict[str, Any]], killer: Killer, probe: CliProbe) -> dict[str, Any]:
    """The report: per phase its results with kills, CLI and HTTP figures; the kills of every loaded phase
    together; and the figures taken between phases."""
    for result in results:
        result["restarts"] = _kills([k for k in killer.kills if k.phase == result["name"]])
        result["cli"] = _cli(probe, result["name"])
        result["http"] = _http(result.get("load", {}))
    seen = {r["name"] for r in results}
    others = sorted(({k.phase for k in killer.kills} | {p.phase for p in probe.probes}) - seen)
    return {
        "phases": results,
        "outside_phases": {
            name: {"restarts": _kills([k for k in killer.kills if k.phase == name]), "cli": _cli(probe, name)}
            for name in others
        },
        "restarts_loaded": _kills([k for k in killer.kills if k.phase not in NOT_LOADED]),
        "kills": len(killer.kills),
        "cli_probes": len(probe.probes),
        "cli_failures": probe.failures,
        "killer_error": repr(killer.error) if killer.error else None,
    }


def check(report: dict[str, Any], limits: Thresholds) -> list[str]:
    """What failed, one line each (empty: every assertion held)."""
    failed: list[str] = []
    phases = report["phases"]
    idle = next((p["restarts"] for p in phases if p["name"] == "quiet"), {})
    if report["killer_error"]:
        failed.append(f"the killer stopped: {report['killer_error']}")
    everything = [(p["name"], p["restarts"], p["cli"]) for p in phases]
    everything += [(name, o["restarts"], o["cli"]) for name, o in report["outside_phases"].items()]
    loaded = report["restarts_loaded"]
    if "p99_ms" in loaded and "p99_ms" in idle:
        # the baseline: the quiet phase's restarts, or a bare spawn of the same child under the same load when that
        # is slower (on 2 busy cores the child waits for a CPU whoever starts it: the machine's cost, not ours)
        base = max(idle["p99_ms"], loaded.get("floor_p99_ms", 0.0))
        if loaded["p99_ms"] > base + limits.restart_over_idle_ms:
            failed.append(
                f"restart p99 under load {loaded['p99_ms']} ms ({loaded['kills']} kills), over the baseline "
                f"{base} ms (idle restart p99 {idle['p99_ms']} ms, bare spawn under load p99 "
                f"{loaded.get('floor_p99_ms')} ms) + {limits.restart_over_idle_ms:g} ms"
            )
    for name, restarts, cli in everything:
        if restarts["missed"]:
            failed.append(f"{name}: kill of {', '.join(restarts['missed'])} not followed by a restart within 5 s")
        if cli["max_s"] is not None and cli["max_s"] >= limits.cli_max_s:
            failed.append(
                f"{name}: `status` took {cli['max_s']} s (limit {limits.cli_max_s:g} s; the daemon's own answer "
                f"to it took at most {cli['answer_max_ms']} ms)"
            )
    failed += [f"status failed: {f}" for f in report["cli_failures"]]
    for p in phases:
        name, http = p["name"], p["http"]
        failed += p.get("failures", [])
        if http["lost"]:
            failed.append(f"{name}: {http['lost']} admitted requests lost (written in full, then no answer)")
        if http["wrong_4xx"]:
            failed.append(f"{name}: requests for paths that exist answered {http['wrong_4xx']} (wrong answers)")
        if http["server_errors"]:
            failed.append(f"{name}: {http['server_errors']} server errors (5xx other than 503): {http['by_status']}")
        if name != "quiet" and (p.get("health_back_s") is None or p["health_back_s"] > limits.health_back_s):
            failed.append(
                f"{name}: /api/v1/health not 200 within {limits.health_back_s:g} s of the load's end "
                f"({p.get('health_back_s')} s)"
            )
        clients = p.get("load", {}).get("clients", {})
        for note, n in (clients.get("bodies") or {}).get("notes", {}).items():
            if "not by size" in note:
                failed.append(f"{name}: {n} large bodies {note}")
        huge = clients.get("control_huge") or {}
        # refused: the error reply, or the connection closed before the line was all written (not admitted)
        wrong = set(huge.get("notes", {})) - {"error reply naming the limit", "told busy (connection caps)"}
        if wrong or set(huge.get("errors", {})) - {"unsent", "connect"}:
            failed.append(f"{name}: over-long control lines not all refused by size: {huge}")
        st = p.get("load", {}).get("schemathesis")
        if st and st["exit_code"]:
            failed.append(f"{name}: schemathesis failed ({st['summary']}): {'; '.join(st['failures']) or st['tail']}")
    if report.get("daemon_exit_code") != 0:
        failed.append(f"the daemon exited {report.get('daemon_exit_code')} on SIGTERM at the end (0 expected)")
    return failed


def _fmt(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:,g}{unit}"


def _notes(p: dict[str, Any]) -> list[str]:
    notes = []
    load = p.get("load", {})
    wrk = load.get("wrk")
    if wrk:
        k = wrk["socket_errors_by_kind"]
        notes.append(
            f"wrk {wrk['rps']:,} req/s, p99 {wrk['p99_ms']} ms, socket errors connect {k.get('connect', 0)} "
            f"read {k.get('read', 0)} write {k.get('write', 0)} timeout {k.get('timeout', 0)}"
        )
    for name, tally in load.get("clients", {}).items():
        if not isinstance(tally, dict) or name == "requesters":
            continue
        parts = [f"{k} {v:,}" for k, v in sorted(tally["notes"].items())]
        parts += [f"{k} {v}" for k, v in sorted(tally["errors"].items()) if v]
        if tally.get("seconds"):
            what = "first event" if name == "sse" else "closed after"
            parts.append(f"{what} median {tally['seconds']['median']} s, max {tally['seconds']['max']} s")
        notes.append(f"{name}: " + ", ".join(parts))
    st = load.get("schemathesis")
    if st:
        notes.append(f"schemathesis: {st['cases']} cases, {st['summary']}")
    if p.get("dashboard_restarts"):
        notes.append(f"the dashboard process was restarted {p['dashboard_restarts']} times")
    return notes


def markdown(report: dict[str, Any]) -> str:
    """The table of figures per phase, its notes, and what failed."""
    phases = report["phases"]
    idle = next((p["restarts"] for p in phases if p["name"] == "quiet"), {})
    lines = [
        f"Chaos, {report['profile']} profile: {report['programs']} programs, {report['kills']} kills, "
        f"{report['cli_probes']} `status` runs, open-files limit {report['nofile']} (dashboard cap "
        f"{max(64, min(4096, report['nofile'] // 3))}), {report['cpus']} CPUs "
        f"(load average {report['loadavg_1min'][0]:g} before, "
        f"{report['loadavg_1min'][1]:g} after), {report['wall_s']:g} s, seed {report['seed']}.",
        "",
        "| phase | requests | 2xx | 503 (the gate's) | other 4xx | 5xx | lost | restart median / p99 ms (kills) "
        "| floor median / p99 ms | `status` max | health back |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        h, r, c = p["http"], p["restarts"], p["cli"]
        restart = f"{_fmt(r.get('median_ms'))} / {_fmt(r.get('p99_ms'))} ({r['kills']})"
        floor = f"{_fmt(r.get('floor_median_ms'))} / {_fmt(r.get('floor_p99_ms'))}"
        if p["name"] == "quiet":
            lines.append(f"| quiet (idle) | | | | | | | {restart} | {floor} | {_fmt(c['max_s'], ' s')} | |")
            continue
        errors = sum(h["errors"].values())
        lines.append(
            f"| {p['name']} | {h['answered'] + h['lost'] + errors:,} | {h['ok']:,} | {h['s503']:,} ({h['busy']:,}) | "
            f"{h['other']:,} | {h['server_errors']} | {h['lost']} | {restart} | {floor} | {_fmt(c['max_s'], ' s')} | "
            f"{_fmt(p.get('health_back_s'), ' s')} |"
        )
    r = report["restarts_loaded"]
    lines.append(
        f"| all loaded phases | | | | | | | {_fmt(r.get('median_ms'))} / {_fmt(r.get('p99_ms'))} ({r['kills']}) | "
        f"{_fmt(r.get('floor_median_ms'))} / {_fmt(r.get('floor_p99_ms'))} | | |"
    )
    lines += ["", f"Idle restart p99: {_fmt(idle.get('p99_ms'))} ms. Per phase:", ""]
    for p in phases:
        if p["name"] == "quiet":
            continue
        extra = "; ".join(_notes(p))
        errs = ", ".join(f"{k} {v}" for k, v in p["http"]["errors"].items())
        lag, answer = p["cli"]["loop_lag_max_ms"], p["cli"]["answer_max_ms"]
        lines.append(
            f"- **{p['name']}** ({p['what']}): {extra}{'; ' if extra else ''}"
            f"{'not admitted or slow: ' + errs + '; ' if errs else ''}supervision loop lag max {_fmt(lag, ' ms')}, "
            f"the daemon's answer to `status` max {_fmt(answer, ' ms')}"
        )
    first, last = phases[0].get("footprint", {}), phases[-1].get("footprint", {})
    lines += [
        "",
        "After the quiet phase -> after the last: "
        + "; ".join(
            f"{name} RSS {first[name]['rss_mb']:g} -> {last[name]['rss_mb']:g} MB, "
            f"descriptors {first[name]['fds']} -> {last[name]['fds']}"
            for name in ("daemon", "dashboard")
            if name in first and name in last
        )
        + ".",
    ]
    logged = report.get("errors_logged", {})
    lines += ["", "ERROR lines logged: " + ", ".join(f"{n} {v['count']}" for n, v in logged.items()) + "."]
    for name, found in logged.items():
        lines += [f"- {name}: {key} ({kind['count']})" for key, kind in found["kinds"].items()]
    if report.get("kept"):
        lines += ["", f"The run's logs and load outputs are kept in {report['kept']}."]
    failed = report.get("failed") or []
    lines += ["", "All assertions held." if not failed else "FAILED:\n" + "\n".join(f"- {f}" for f in failed)]
    return "\n".join(lines) + "\n"
