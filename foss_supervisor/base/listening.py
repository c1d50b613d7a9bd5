"""What a set of processes listens on: TCP ports, read from ``/proc`` (Linux; stdlib only).

:func:`listening_sockets` reads the kernel's tables of TCP sockets once (``/proc/net/tcp`` and ``tcp6``,
state 0A: LISTEN) into ``{inode: "address:port"}``; :func:`ports_of` then looks at each process's open
descriptors (``/proc/PID/fd``, links like ``socket:[12345]``) and keeps the listening ones. A process of
another user whose descriptors cannot be read is skipped (a root daemon reads all). Cost: one read of the
two tables per call, one directory listing per process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable, Mapping

__all__ = ["listening_sockets", "ports_of"]

_LISTEN = "0A"


def _address(hex_address: str) -> str:
    """``0100007F:1F90`` -> ``127.0.0.1:8080``; ``00000000:0050`` -> ``*:80``; IPv6 in brackets."""
    host_hex, port_hex = hex_address.split(":")
    port = int(port_hex, 16)
    raw = bytes.fromhex(host_hex)
    # the kernel prints each 32-bit word in host order (little-endian here)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    if ip.is_unspecified:
        return f"*:{port}"
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def listening_sockets(proc: str = "/proc") -> dict[int, str]:
    """``{socket inode: "address:port"}`` of every listening TCP socket of the host (v4 and v6)."""
    found: dict[int, str] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"{proc}/net/{table}", encoding="ascii") as f:
            next(f, None)  # the header
            for line in f:
                fields = line.split()
                if len(fields) > 9 and fields[3] == _LISTEN:
                    with contextlib.suppress(ValueError):
                        found[int(fields[9])] = _address(fields[1])
    return found


def ports_of(pids: Iterable[int], sockets: Mapping[int, str], proc: str = "/proc") -> list[str]:
    """The listening addresses among ``pids``' open descriptors, sorted by port then address, each once."""
    found: set[str] = set()
    for pid in pids:
        folder = f"{proc}/{pid}/fd"
        with contextlib.suppress(OSError):
            for fd in os.listdir(folder):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"{folder}/{fd}")
                    if link.startswith("socket:[") and (where := sockets.get(int(link[8:-1]))) is not None:
                        found.add(where)
    return sorted(found, key=lambda a: (int(a.rsplit(":", 1)[1]), a))
