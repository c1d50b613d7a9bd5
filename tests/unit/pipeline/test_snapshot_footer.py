"""The digest a snapshot's gate compares (worker.snapshotfiles.footer_sha256) over the whole class of file
contents: any bytes give a digest or ValueError, never another exception or a read past the file; a digest
depends on the footer only, and any change of the footer's bytes or length changes it."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foss_supervisor.pipeline.worker.snapshotfiles import footer_sha256

SETTINGS = settings(
    max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_files = itertools.count()


def parquet_like(body: bytes, footer: bytes) -> bytes:
    """``body``, then ``footer`` with its length and the magic bytes, as a Parquet file ends."""
    return b"PAR1" + body + footer + len(footer).to_bytes(4, "little") + b"PAR1"


def _write(folder: Path, data: bytes) -> Path:
    path = folder / f"f{next(_files)}.parquet"
    path.write_bytes(data)
    return path


@SETTINGS
@given(data=st.binary(max_size=64) | st.binary(max_size=40).map(lambda b: b + b"PAR1"))
def test_any_bytes_give_a_digest_or_a_value_error(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    try:
        digest = footer_sha256(path)
    except ValueError:
        return
    assert len(digest) == 64 and data.endswith(b"PAR1")


@SETTINGS
@given(body=st.binary(max_size=30), other=st.binary(max_size=30), footer=st.binary(min_size=1, max_size=30))
def test_the_digest_is_the_footers_and_changes_with_it(
    tmp_path: Path, body: bytes, other: bytes, footer: bytes
) -> None:
    digest = footer_sha256(_write(tmp_path, parquet_like(body, footer)))
    assert footer_sha256(_write(tmp_path, parquet_like(other, footer))) == digest  # the data pages: not read
    changed = bytes([footer[0] ^ 1]) + footer[1:]
    assert footer_sha256(_write(tmp_path, parquet_like(body, changed))) != digest
    assert footer_sha256(_write(tmp_path, parquet_like(body[:-1], footer + b"\0"))) != digest


def test_a_footer_longer_than_its_file_is_refused(tmp_path: Path) -> None:
    data = b"PAR1" + (1000).to_bytes(4, "little") + b"PAR1"
    with pytest.raises(ValueError, match="no Parquet footer"):
        footer_sha256(_write(tmp_path, b"\0" * 4 + data))
