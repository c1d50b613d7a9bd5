"""The open-files limit against the programs a config holds: raised at start, checked at start and reload."""

from __future__ import annotations

import resource
from pathlib import Path

import structlog

__all__ = ["FDS_PER_PROGRAM", "FDS_RESERVED", "open_files_shortfall", "raise_open_files_limit"]

log = structlog.get_logger("foss_supervisor.daemon")

# Open files a program costs the daemon (stdout and stderr pipes, pidfd, log file, a spare for probes
# and readiness sockets; about 4 measured with 500 programs), and those the daemon keeps for itself
# (control and dashboard clients, its log, the pipeline worker).
FDS_PER_PROGRAM = 5
FDS_RESERVED = 128


def open_files_shortfall(programs: int) -> str | None:
    """Why this process cannot run ``programs`` programs within its open-files limit, or None when it can."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = FDS_RESERVED + FDS_PER_PROGRAM * programs
    if soft == resource.RLIM_INFINITY or need <= soft:
        return None
    return (
        f"{programs} programs need about {need} open files, and this daemon may open {soft} (hard limit "
        f"{hard}): raise the limit (ulimit -n, systemd LimitNOFILE=) or run fewer programs"
    )


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one (supervisord's ``minfds``); return (old, new) soft.

    Every program costs the daemon a few descriptors (pipes, pidfd, log file), so the common soft
    limit of 1,024 runs out at a few hundred programs. An unlimited hard limit is capped at the
    kernel's ``fs.nr_open``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            target = int(Path("/proc/sys/fs/nr_open").read_text(encoding="ascii"))
        except (OSError, ValueError):
            target = 1024 * 1024
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            log.warning("open_files_limit_not_raised", soft=soft, hard=hard, error=str(exc))
            return soft, soft
        log.info("open_files_limit_raised", old_soft=soft, new_soft=target, hard=hard)
        return soft, target
    log.info("open_files_limit", soft=soft, hard=hard)
    return soft, soft
