"""The stop records: the last line about a trial wins, and asking about one trial reads only what is new."""

from __future__ import annotations

import pickle
from pathlib import Path

from fracture_tune.search.stops import StopLedger, TrialStop


def test_each_ledger_sees_what_any_other_appended_and_the_last_line_wins(tmp_path: Path) -> None:
    scheduler, callback = StopLedger(tmp_path), StopLedger(tmp_path)
    scheduler.record("t1", "stopped_by_asha", 2)
    assert callback.get("t1") == TrialStop("stopped_by_asha", 2, "")
    callback.record("t1", "finished", 4)  # resumed and ran on: the later record wins
    assert scheduler.get("t1") == TrialStop("finished", 4, "")
    scheduler.start_driver()
    callback.note_time_budget_ran_out()
    assert scheduler.time_budget_ran_out()
    scheduler.start_driver()  # a resumed driver: the budget that ran out before no longer applies
    assert not callback.time_budget_ran_out()
    assert pickle.loads(pickle.dumps(callback)).all() == {"t1": TrialStop("finished", 4, "")}


def test_a_line_cut_short_is_skipped_until_it_is_complete(tmp_path: Path) -> None:
    ledger = StopLedger(tmp_path)
    ledger.record("t1", "finished", 3)
    with open(ledger.path, "a", encoding="utf-8") as stream:
        stream.write('{"trial_id": "t2", "reason": "err')  # a driver killed mid-write
    assert set(StopLedger(tmp_path).all()) == {"t1"}
    with open(ledger.path, "a", encoding="utf-8") as stream:
        stream.write('or", "epoch": 1}\n')
    assert ledger.get("t2") == TrialStop("error", 1, "")


def _bytes_read_by_this_process() -> int:
    """``rchar`` of /proc/self/io: every byte read() returned to this process, whatever code read it."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_asking_about_a_trial_reads_only_what_was_appended_since(tmp_path: Path) -> None:
    """A search's 10,000th trial must not read the 9,999 records before it (once per callback, per trial)."""
    ledger = StopLedger(tmp_path)
    for index in range(2000):
        ledger.record(f"t{index}", "finished", 1)
    reader = StopLedger(tmp_path)
    assert reader.get("t0") is not None  # the first look reads the whole file once
    ledger.record("new", "stopped_by_asha", 1)
    before = _bytes_read_by_this_process()
    assert reader.get("new") == TrialStop("stopped_by_asha", 1, "")
    assert reader.get("t5") == TrialStop("finished", 1, "")
    read = _bytes_read_by_this_process() - before  # (includes reading /proc/self/io itself: ~200 bytes)
    whole = ledger.path.stat().st_size
    assert read < whole // 20, f"read {read} bytes of a {whole}-byte file to learn one new record"
