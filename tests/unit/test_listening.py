"""What processes listen on (base/listening.py), from a /proc laid out by the test: every address form."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.base.listening import listening_sockets, ports_of

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def _hex(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The kernel's spelling: each 32-bit word of the address in little-endian order."""
    raw = ip.packed
    return b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)).hex().upper()


def _line(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, state: str, inode: int) -> str:
    return f"   0: {_hex(ip)}:{port:04X} {'0' * len(_hex(ip))}:0000 {state} 0:0 00:0 0 0 0 {inode} 1 x\n"


ADDRESSES = st.ip_addresses(v=4) | st.ip_addresses(v=6)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(ADDRESSES, st.integers(1, 65535), st.sampled_from(["0A", "01", "06"])), max_size=12))
def test_every_listening_socket_is_read_back_as_its_address(
    tmp_path_factory: pytest.TempPathFactory,
    sockets: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, str]],
) -> None:
    proc = tmp_path_factory.mktemp("proc")
    (proc / "net").mkdir()
    lines = {4: HEADER, 6: HEADER}
    expected = {}
    for inode, (ip, port, state) in enumerate(sockets, start=100):
        lines[ip.version] += _line(ip, port, state, inode)
        if state == "0A":
            host = "*" if ip.is_unspecified else (f"[{ip}]" if ip.version == 6 else str(ip))
            expected[inode] = f"{host}:{port}"
    (proc / "net" / "tcp").write_text(lines[4])
    (proc / "net" / "tcp6").write_text(lines[6])
    assert listening_sockets(str(proc)) == expected


def test_a_process_tree_lists_its_listening_descriptors_once_each(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "tcp").write_text(
        HEADER
        + _line(ipaddress.ip_address("127.0.0.1"), 8080, "0A", 11)
        + _line(ipaddress.ip_address("0.0.0.0"), 443, "0A", 12)
        + _line(ipaddress.ip_address("127.0.0.1"), 5432, "01", 13)  # a connection, not a listener
    )
    (tmp_path / "net" / "tcp6").write_text(HEADER + _line(ipaddress.ip_address("::"), 443, "0A", 14))
    for pid, links in {
        10: ["socket:[11]", "pipe:[5]", "/dev/null"],
        11: ["socket:[12]", "socket:[13]", "socket:[14]"],
    }.items():
        fd = tmp_path / str(pid) / "fd"
        fd.mkdir(parents=True)
        for n, target in enumerate(links):
            os.symlink(target, fd / str(n))
    sockets = listening_sockets(str(tmp_path))
    assert ports_of([10, 11, 12], sockets, str(tmp_path)) == ["*:443", "127.0.0.1:8080"]  # v4 and v6 any: once
    assert ports_of([10, 10], sockets, str(tmp_path)) == ["127.0.0.1:8080"]
    assert ports_of([], sockets, str(tmp_path)) == []
