"""The demo data generator: the same seed gives the same bytes, and the shipped reference files are what it
generates."""

from __future__ import annotations

from pathlib import Path

from helpers import REPO

from foss_supervisor.pipeline.engine.spec import default_pipelines_dir
from foss_supervisor.pipeline.worker.callables import load_callable

#: the orders pipeline's generator, from its folder (as the daemon loads it)
generate = load_callable(f"{default_pipelines_dir() / 'orders' / 'demo_data.py'}:generate")
write_reference = load_callable(f"{default_pipelines_dir() / 'orders' / 'demo_data.py'}:write_reference")


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", orders=3000, seed=7, files=3)
    b = generate(tmp_path / "b", orders=3000, seed=7, files=3)
    assert [p.name for p in a.files] == [p.name for p in b.files]
    assert all(pa.read_bytes() == pb.read_bytes() for pa, pb in zip(a.files, b.files, strict=True))
    c = generate(tmp_path / "c", orders=3000, seed=8, files=3)
    assert a.files[0].read_bytes() != c.files[0].read_bytes()
    assert not list((tmp_path / "a").glob(".*"))  # no temporary files left behind


def test_shipped_reference_matches_generator(tmp_path: Path) -> None:
    write_reference(tmp_path)
    shipped = REPO / "configs" / "reference"
    for name in ("products.csv", "countries.csv", "fx_rates.csv"):
        assert (tmp_path / name).read_text() == (shipped / name).read_text()
