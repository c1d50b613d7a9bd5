"""After a rollback the dashboard's report (``latest.json|.html``) describes the tables restored, never the run
rolled back (report.restore_report)."""

from __future__ import annotations

import json
from pathlib import Path

from foss_supervisor.pipeline.worker.report import restore_report


def test_the_target_runs_report_becomes_the_rollbacks_and_the_latest(tmp_path: Path) -> None:
    doc = {"pipeline": "p", "run_id": "r1", "layers": {"silver.t": 3}, "quality": {}, "top_rejection_reasons": []}
    (tmp_path / "r1.json").write_text(json.dumps(doc))
    (tmp_path / "r1.html").write_text("<p>run r1: 3 rows</p>")
    (tmp_path / "latest.json").write_text(json.dumps({**doc, "run_id": "r2", "layers": {"silver.t": 9}}))
    assert restore_report(tmp_path, "r1", "r3") is True
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest == {**doc, "run_id": "r3", "rolled_back_to": "r1"}
    assert json.loads((tmp_path / "r3.json").read_text()) == latest
    assert (tmp_path / "r3.html").read_text() == (tmp_path / "latest.html").read_text() == "<p>run r1: 3 rows</p>"
    assert (tmp_path / "latest.json").stat().st_mode & 0o777 == 0o600


def test_without_a_report_of_the_target_no_report_of_other_tables_is_left_shown(tmp_path: Path) -> None:
    for name in ("latest.json", "latest.html"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "r1.json").write_text("not json")  # damaged counts as missing
    assert restore_report(tmp_path, "r1", "r3") is False
    assert not (tmp_path / "latest.json").exists() and not (tmp_path / "latest.html").exists()
    assert restore_report(tmp_path / "absent", "r1", "r3") is False  # no folder at all: nothing to remove
