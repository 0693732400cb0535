"""A worker's measurement of its device (micheck.workers.calibrate), as the worker runs
it: a child process whose JSON goes into the workers row, kept per box and device."""

from __future__ import annotations

import json

from micheck.workers import worker

from micheck.settings import Settings
from micheck.storage import store
from micheck.storage.db import Database
from micheck.storage.models import WorkerRow, utcnow


def test_a_worker_measures_its_device_once_per_box_and_stores_it_in_its_row(tmp_path,
                                                                           monkeypatch):
    settings = Settings(var_dir=tmp_path, calibration_seconds=0.2, host_name="box-a")
    measured = worker.calibration(settings, "cpu")
    # positive and finite; no timing bound (this machine is shared)
    assert measured["gmac_per_s"] > 0 and 0 < measured["step_overhead_s"] < 10
    assert measured["device"] == "cpu" and "separable CNN" in measured["model"]
    kept = tmp_path / "calibration-box-a-cpu.json"
    assert json.loads(kept.read_text())["gmac_per_s"] == measured["gmac_per_s"]

    def no_child(*args, **kw):
        raise AssertionError("measured again instead of reusing the box's measurement")

    monkeypatch.setattr(worker.subprocess, "run", no_child)
    again = worker.calibration(settings, "cpu")
    assert again["reused"] and again["gmac_per_s"] == measured["gmac_per_s"]

    db = Database(settings)
    try:
        with db.session() as s:
            s.add(WorkerRow(name="w1", device="cpu", queue="cpu", host="box-a", pid=1,
                            started_at=utcnow(), heartbeat_at=utcnow()))
        with db.session() as s:
            assert store.record_calibration(s, "w1", measured)
            assert not store.record_calibration(s, "gone", measured)
        from datetime import timedelta
        with db.session() as s:
            (row,) = store.live_speeds(s, timedelta(seconds=60))
        assert row == ("w1", "cpu", "cpu", measured["gmac_per_s"], measured["step_overhead_s"])
    finally:
        db.dispose()
