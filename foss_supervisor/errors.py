"""The errors foss-supervisor raises, as one tree.

::

    SupervisorError
    ├── ConfigError            a config file or value is refused (names file, line, key, reason)
    ├── IllegalTransitionError an edge missing from a state table (programs, steps, runs, the daemon's phase)
    ├── DaemonError
    │   ├── AlreadyRunning     another live daemon holds the PID file lock
    │   ├── InstanceConflict   another live foss-supervisor holds what this one needs (names it)
    │   └── PortInUse          the dashboard port is held (names the holder)
    └── ControlError           the control socket refused or failed a request
        ├── ProtocolError      a malformed, oversized or unknown request
        ├── CommandError       a well-formed request the command could not do
        │   └── ConfigRefused  a reload or save refused a config (the running config and the file stay)
        │       └── ConfirmationRequired  a save that would empty the file or stop every program, unconfirmed
        ├── NoAnswer           the daemon did not answer within the client's timeout
        │   └── DaemonBusy     its control socket took no new connection (backlog full) within the timeout
        └── NotRunning         no daemon answers on the control socket
"""

from __future__ import annotations

__all__ = [
    "AlreadyRunning",
    "CommandError",
    "ConfigError",
    "ConfigRefused",
    "ConfirmationRequired",
    "ControlError",
    "DaemonBusy",
    "DaemonError",
    "IllegalTransitionError",
    "InstanceConflict",
    "NoAnswer",
    "NotRunning",
    "PortInUse",
    "ProtocolError",
    "SupervisorError",
    "shown_key",
]


class SupervisorError(Exception):
    """Root of every error foss-supervisor raises on purpose."""


def shown_key(key: str) -> str:
    """``key`` as an error message shows it: as written when every character prints and none is a space,
    else quoted with escapes (``'a\\xa0b'``); ``<root>`` for the empty key."""
    if not key:
        return "<root>"
    if key.isprintable() and not any(c.isspace() for c in key):
        return key
    return repr(key)


class ConfigError(SupervisorError):
    """A config is refused; the message names the file, line, dotted key and reason.

    ``errors`` holds every error found in the file (this one first); :meth:`collected` builds the one
    error that reports them all, so an operator fixes a file in one pass, not one error per try.
    """

    def __init__(self, file: str, key: str, reason: str, line: int | None = None) -> None:
        self.file, self.key, self.reason, self.line = file, key, reason, line
        self.errors: tuple[ConfigError, ...] = (self,)
        super().__init__(self.located)

    @property
    def located(self) -> str:
        """``file:line: key: reason`` for this one error; a key that would not print as it is (a space, a
        no-break space, a control character: invisible, or an escape sequence for the terminal) is quoted
        with its characters escaped, so the operator sees which key is meant."""
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {shown_key(self.key)}: {self.reason}"

    @classmethod
    def collected(cls, errors: list[ConfigError]) -> ConfigError:
        """One error for many (in file order): the first's fields, a message listing each on its line."""
        if not errors:
            raise ValueError("collected() needs at least one error")
        ordered = sorted(errors, key=lambda e: (e.line is None, e.line or 0))
        if len(ordered) == 1:
            return ordered[0]
        first = ordered[0]
        combined = cls(first.file, first.key, first.reason, first.line)
        combined.errors = tuple(ordered)
        combined.args = (f"{len(ordered)} errors:\n" + "\n".join(f"  {e.located}" for e in ordered),)
        return combined


class IllegalTransitionError(SupervisorError):
    """A state machine was asked to take an edge its table does not have (a bug: the site is wrong).

    ``machine`` names the table (``process``, ``step``, ``run``, ``daemon phase``); ``old`` and ``new`` are the
    states' words. One class for every table (:class:`foss_supervisor.base.transitions.TransitionTable`).
    """

    def __init__(self, machine: str, old: str, new: str) -> None:
        self.machine, self.old, self.new = machine, old, new
        super().__init__(f"illegal {machine} transition {old} -> {new}")


class DaemonError(SupervisorError):
    """The daemon cannot start or run as asked."""


class AlreadyRunning(DaemonError):
    """Another live daemon holds the PID file lock."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        super().__init__(f"another foss-supervisor daemon is running (pid {pid})")


class InstanceConflict(DaemonError):
    """Another live foss-supervisor, answering on its control socket, holds ``what``; it is never stopped."""

    def __init__(self, what: str, pid: int | None, state_dir: str | None, config: str | None) -> None:
        self.what, self.pid, self.state_dir, self.config = what, pid, state_dir, config
        stop = f"foss-supervisor stop --config {config}" if config else "foss-supervisor stop"
        super().__init__(
            f"{what} is held by another running foss-supervisor (pid {pid}, state dir {state_dir}, "
            f"config {config}); it is left alone: stop it first ({stop}) or use another port"
        )


class PortInUse(DaemonError):
    """The dashboard port is taken; ``holder`` describes who holds it, when known."""

    def __init__(self, host: str, port: int, holder: dict[str, object] | None) -> None:
        self.host, self.port, self.holder = host, port, holder
        who = (
            f"pid {holder.get('pid')} user {holder.get('user')} command {holder.get('cmdline')!r}"
            if holder
            else "an unknown process (not visible to this user)"
        )
        super().__init__(f"port {host}:{port} is in use by {who}")


class ControlError(SupervisorError):
    """The control socket refused or failed a request."""


class ProtocolError(ControlError):
    """A request that is malformed, oversized, or names an unknown command."""


class CommandError(ControlError):
    """A well-formed request that the command could not carry out."""


class ConfigRefused(CommandError):
    """A reload or save found the config bad and kept the running config (the CLI exits 2, as for a bad file)."""


class ConfirmationRequired(ConfigRefused):
    """A save that would empty the config file, leave no program, or stop every running one, asked without
    its confirmation (``allow_empty``); the message says what would happen. Nothing changed."""


class NotRunning(ControlError):
    """No daemon answers on the control socket."""


class NoAnswer(ControlError):
    """The daemon accepted the request but did not answer within the client's timeout."""


class DaemonBusy(NoAnswer):
    """The daemon's control socket took no new connection within the client's timeout, retried with backoff
    (its listen backlog stayed full); the CLI says "busy" and exits 75 (EX_TEMPFAIL: try again)."""
