"""Auditing the images' pinned Python dependencies against known advisories: `nox -s audit`.

pip-audit reads each image's requirements file (pinned, with hashes) without installing anything
and asks OSV, the open advisory database, about every pin. Any known advisory, or any pin that
could not be checked, fails the audit. `CLASSHUB_OSV_URL` names an OSV-compatible mirror for
networks that cannot reach api.osv.dev.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

IMAGE_REQUIREMENTS = ("hub/requirements.txt", "singleuser/base-requirements.txt")
OSV_URL_ENV = "CLASSHUB_OSV_URL"


def pip_audit_args(requirements: Path | str, environ: Mapping[str, str]) -> list[str]:
    """The pip-audit command line for one requirements file."""
    args = [
        sys.executable, "-m", "pip_audit",
        "--requirement", str(requirements),
        "--require-hashes",
        "--disable-pip",  # read the pins as they are: no resolver, no download
        "--strict",  # a pin that cannot be audited fails too
        "--vulnerability-service", "osv",
        "--progress-spinner", "off",
    ]  # fmt: skip
    if environ.get(OSV_URL_ENV):
        args += ["--osv-url", environ[OSV_URL_ENV]]
    return args


def main() -> int:
    """Audit both images' requirements (from the project root); non-zero when any audit fails."""
    import os
    import subprocess

    failed = []
    for requirements in IMAGE_REQUIREMENTS:
        print(f"-> pip-audit {requirements}", flush=True)
        if subprocess.run(pip_audit_args(requirements, os.environ)).returncode != 0:
            failed.append(requirements)
    if failed:
        print(f"error: the audit failed for {', '.join(failed)} (see above)")
        return 1
    print("No known advisory for any pinned dependency of either image.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
