"""server.py: the process around the application (descriptor table; workers are covered end to end)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from processes import http_get

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the descriptor table size from /proc")

PROBE = """
import resource, sys
from dynamo.nemo_switchyard.server import reserve_descriptors
soft = int(sys.argv[1])
if soft:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
def size():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("FDSize:"))
before = size()
reserved = reserve_descriptors(limit=int(sys.argv[2]))
print(before, reserved, size(), len(__import__("os").listdir("/proc/self/fd")))
"""


def probe(soft: int, limit: int) -> tuple[int, int, int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(soft), str(limit)], capture_output=True, text=True, check=True, close_fds=True)
    before, reserved, after, open_fds = map(int, out.stdout.split())
    return before, reserved, after, open_fds


def test_the_descriptor_table_is_grown_once_at_start_to_the_open_files_limit():
    before, reserved, after, open_fds = probe(soft=3000, limit=65536)
    assert before < 3000 and reserved == 3000
    assert after >= 3000  # the kernel rounds up to a power of two
    assert open_fds < 16  # the probe descriptors are closed again


def test_the_reservation_is_capped():
    _, reserved, after, _ = probe(soft=0, limit=1000)  # soft=0: the limit as it is (>= 1000 here)
    assert reserved == 1000 and 1000 <= after < 4096


def test_a_descriptor_already_open_at_the_top_is_left_alone():
    code = """
import os, sys
from dynamo.nemo_switchyard.server import reserve_descriptors
r, w = os.pipe()
os.dup2(w, 999)
print(reserve_descriptors(limit=1000))
os.write(999, b"still open")
print(os.read(r, 100).decode())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["1000", "still open"]


def test_a_limit_within_the_initial_table_reserves_nothing():
    before, reserved, after, _ = probe(soft=64, limit=65536)
    assert reserved == 0 and after == before


def test_the_server_reserves_before_it_serves(proxy):
    """The running proxy's table is already large, before any connection needed it."""
    assert http_get(proxy.url + "/health")[0] == 200
    status = Path(f"/proc/{proxy.process.pid}/status").read_text()
    size = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("FDSize:"))
    assert size >= min(1024, os.sysconf("SC_OPEN_MAX"))
