"""`nox -s audit` (classhub/audit.py): the real pip-audit, pointed at an OSV server on loopback.

api.osv.dev cannot be reached from these machines, so the server here speaks OSV's query API
(POST /v1/query) with records in OSV's schema: none at all, or one advisory for one pinned
package. What is checked is ours: every pin of both images is asked about, and one advisory
fails the audit, naming the package and the advisory.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading

import pytest

from classhub.audit import IMAGE_REQUIREMENTS, OSV_URL_ENV
from tests.conftest import PROJECT, clean_environ


class OSV(http.server.ThreadingHTTPServer):
    def __init__(self, advisories: dict[str, dict]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.advisories = advisories  # package name -> OSV record
        self.asked: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/query"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name, version = query["package"]["name"], query["version"]
        self.server.asked.append((name, version))
        record = self.server.advisories.get(name)
        body = json.dumps({"vulns": [record]} if record else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def osv():
    servers = []

    def start(advisories: dict[str, dict]) -> OSV:
        server = OSV(advisories)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


def audit(url: str) -> subprocess.CompletedProcess:
    env = clean_environ(**{OSV_URL_ENV: url})
    return subprocess.run(
        [sys.executable, "-m", "classhub.audit"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def pins(requirements: str) -> set[tuple[str, str]]:
    text = (PROJECT / requirements).read_text()
    return {
        (m.group(1).lower().replace("_", "-").replace(".", "-"), m.group(2))
        for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, re.MULTILINE)
    }


def test_no_advisories_passes_after_asking_about_every_pin_of_both_images(osv):
    server = osv({})
    result = audit(server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    wanted = set().union(*(pins(r) for r in IMAGE_REQUIREMENTS))
    assert wanted and wanted <= set(server.asked), sorted(wanted - set(server.asked))[:5]


def test_one_advisory_fails_the_audit_and_names_it(osv):
    name, _ = sorted(pins("hub/requirements.txt"))[0]
    record = {
        "schema_version": "1.6.0",
        "id": "GHSA-test-0000-0000",
        "aliases": ["CVE-2026-00000"],
        "summary": "a test advisory",
        "affected": [
            {
                "package": {"name": name, "ecosystem": "PyPI"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}
                ],
            }
        ],
    }
    result = audit(osv({name: record}).url)
    assert result.returncode == 1
    assert "CVE-2026-00000" in result.stdout and name in result.stdout  # the alias is shown
    assert "the audit failed for hub/requirements.txt" in result.stdout


def test_an_unreachable_advisory_service_fails_rather_than_passes():
    result = audit("http://127.0.0.1:9/v1/query")  # nothing listens on the discard port
    assert result.returncode == 1, result.stdout
