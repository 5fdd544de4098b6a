"""A lock left by a dead run on this host is taken over; any other lock is never removed."""

import json
import os
import socket
import subprocess
import sys

import pytest

from firereg.locking import LockHeldError, create_lock, stale_lock_holder


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has this pid now (pids are not reused this quickly)


def _lock(pid, host=None) -> str:
    return json.dumps({"pid": pid, "host": host or socket.gethostname()})


def test_only_a_dead_process_on_this_host_makes_a_lock_stale():
    dead = _dead_pid()
    assert stale_lock_holder(_lock(dead)) == dead
    assert stale_lock_holder(_lock(os.getpid())) is None  # alive
    assert stale_lock_holder(_lock(dead, host="another-host.example")) is None  # cannot know
    assert stale_lock_holder("999999") is None  # the old pid-only format: unknown host
    assert stale_lock_holder("not json") is None and stale_lock_holder(_lock(True)) is None


def test_create_lock_takes_over_a_stale_lock_and_refuses_a_live_one(tmp_path):
    lock = tmp_path / ".firereg.lock"
    dead = _dead_pid()
    lock.write_text(_lock(dead))
    seen = []
    create_lock(lock, on_stale=seen.append)
    assert seen == [dead] and json.loads(lock.read_text()) == {"pid": os.getpid(),
                                                                "host": socket.gethostname()}
    assert [p.name for p in tmp_path.iterdir()] == [".firereg.lock"]  # nothing left aside
    with pytest.raises(LockHeldError) as held:  # now held by this live process
        create_lock(lock)
    assert str(os.getpid()) in held.value.holder
    lock.write_text(_lock(dead, host="another-host.example"))
    with pytest.raises(LockHeldError):
        create_lock(lock)
    assert "another-host.example" in lock.read_text()  # untouched
