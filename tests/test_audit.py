"""scripts/audit.sh, the dependency audit, against fake vulnerability services on loopback: a known
vulnerability fails it, an unreachable service gives a WARNING naming every package it could not check
(and exit 0), and --online fails rather than pass what it could not check.

The fakes: PyPI's project JSON (/pypi/NAME/json: the latest release and its advisories) and OSV's query
API (POST /v1/query), which pip-audit (installed by the script into .venv-audit) is pointed at.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# name -> (latest release, advisories of that release in PyPI's JSON shape)
PYPI = {
    "alpha": ("1.0", [{"id": "PYSEC-0000-1", "aliases": ["CVE-0000-1", "GHSA-aaaa-bbbb-cccc"], "fixed_in": ["1.1"],
                       "link": "https://example.invalid", "summary": "test", "withdrawn": None}]),
    "beta": ("2.0", []),
    "gamma": ("3.0", []),
}
# (name, version) -> OSV vulns
OSV = {
    ("alpha", "1.0"): [{"id": "PYSEC-0000-1", "aliases": ["CVE-0000-1"], "summary": "test",
                        "affected": [{"package": {"name": "alpha", "ecosystem": "PyPI"},
                                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1"}]}]}]}],
}


class Fake(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def send_json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json" and parts[1] in PYPI:
            latest, vulns = PYPI[parts[1]]
            self.send_json(200, {"info": {"name": parts[1], "version": latest}, "releases": {}, "vulnerabilities": vulns})
        else:
            self.send_json(404, {"message": "Not Found"})

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        vulns = OSV.get((query["package"]["name"], query["version"]), [])
        self.send_json(200, {"vulns": vulns} if vulns else {})


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def audit(tmp_path: Path, pins: list[str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    req = tmp_path / "requirements.txt"
    req.write_text("\n".join(pins) + "\n")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_")} | {"AUDIT_TIMEOUT": "5", **env}
    return subprocess.run(["bash", "scripts/audit.sh", "-r", str(req), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=300)


def test_unreachable_service_warns_with_every_package_and_passes(tmp_path: Path) -> None:
    result = audit(tmp_path, ["alpha==1.0", "beta==2.0"], "--no-pip-audit", AUDIT_PYPI_URL=f"http://127.0.0.1:{closed_port()}/pypi")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "WARNING: the dependency audit is INCOMPLETE: 2 of 2 packages were NOT checked" in out
    assert "WARNING:   alpha==1.0" in out and "WARNING:   beta==2.0" in out
    assert "bash scripts/audit.sh --online" in out and "--strict" in out


def test_vulnerability_in_the_latest_release_fails(tmp_path: Path, server: str) -> None:
    result = audit(tmp_path, ["alpha==1.0", "beta==2.0"], "--no-pip-audit", AUDIT_PYPI_URL=f"{server}/pypi")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "VULNERABLE alpha 1.0: PYSEC-0000-1 (CVE-0000-1, GHSA-aaaa-bbbb-cccc), fixed in 1.1" in result.stdout
    assert "WARNING" not in result.stdout  # both are at their latest release: both were checked


def test_an_ignored_vulnerability_passes_by_any_of_its_ids(tmp_path: Path, server: str) -> None:
    result = audit(tmp_path, ["alpha==1.0"], "--no-pip-audit", "--ignore-vuln", "CVE-0000-1", AUDIT_PYPI_URL=f"{server}/pypi")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ignored (--ignore-vuln): alpha 1.0 PYSEC-0000-1" in result.stdout
    assert "no known vulnerabilities in the 1 of 1 packages checked" in result.stdout


def test_an_older_release_is_reported_unchecked(tmp_path: Path, server: str) -> None:
    result = audit(tmp_path, ["beta==1.5", "gamma==3.0", "delta==1.0"], "--no-pip-audit", AUDIT_PYPI_URL=f"{server}/pypi")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "2 of 3 packages were NOT checked" in out
    assert "WARNING:   beta==1.5  (latest release is 2.0" in out
    assert "WARNING:   delta==1.0  (" in out and "HTTP 404" in out
    assert "gamma==3.0" not in out


def test_pip_audit_finding_fails_and_a_clean_set_passes(tmp_path: Path, server: str) -> None:
    # The real pip-audit (the script installs it into .venv-audit), asking the fake OSV.
    env = {"AUDIT_OSV_URL": f"{server}/v1/query", "AUDIT_PYPI_URL": f"http://127.0.0.1:{closed_port()}/pypi"}
    found = audit(tmp_path, ["alpha==1.0", "beta==2.0"], **env)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "checked 2, could not check 0" in found.stdout
    assert "VULNERABLE alpha 1.0: PYSEC-0000-1 (CVE-0000-1), fixed in 1.1 [pip-audit]" in found.stdout
    clean = audit(tmp_path, ["alpha==1.1", "beta==2.0"], **env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "WARNING" not in clean.stdout and "no known vulnerabilities in the 2 of 2 packages checked" in clean.stdout


def test_online_fails_on_a_finding_and_on_an_unreachable_service(tmp_path: Path, server: str) -> None:
    found = audit(tmp_path, ["alpha==1.0"], "--online", AUDIT_OSV_URL=f"{server}/v1/query")
    assert found.returncode != 0 and "PYSEC-0000-1" in found.stdout + found.stderr
    clean = audit(tmp_path, ["alpha==1.1"], "--online", AUDIT_OSV_URL=f"{server}/v1/query")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    unreachable = audit(tmp_path, ["alpha==1.1"], "--online", AUDIT_OSV_URL=f"http://127.0.0.1:{closed_port()}/v1/query")
    assert unreachable.returncode != 0


def test_an_empty_package_set_is_an_error_not_a_pass(tmp_path: Path) -> None:
    result = audit(tmp_path, ["# nothing"], "--no-pip-audit")
    assert result.returncode == 2 and "no packages to audit" in result.stderr
