"""Images on the Docker engine: builds with their progress and log, and the base image pulled or,
when no registry answers, built from the host's Debian packages (debootstrap, then an import).

What a build is made of and when it is up to date is decided in `classhub/images.py`; this module
only runs it on the engine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import docker.errors

from ... import names
from ...console import Echo
from ...errors import UserError
from ...images import ImageSpec, context_tar, inputs_hash, local_base_tag, resolve_base, state_of

_CERT_FAILURE = re.compile(
    r"CERTIFICATE_VERIFY_FAILED|SELF_SIGNED_CERT_IN_CHAIN|self[- ]signed certificate|"
    r"unable to get local issuer certificate|UNABLE_TO_GET_ISSUER_CERT",
    re.IGNORECASE,
)


def find(client: docker.DockerClient, ref: str):
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def image_state(client: docker.DockerClient, tag: str, wanted: str | None) -> str:
    """'missing', 'up to date', 'out of date' or 'not built by classhub' (left alone)."""
    image = find(client, tag)
    return state_of(None if image is None else (image.labels or {}), wanted)


def ensure(
    client: docker.DockerClient, spec: ImageSpec, ca: bytes, base: str, log_dir: Path, echo: Echo
) -> None:
    """Build `spec` FROM `base` unless an image with the same inputs is there (or not ours)."""
    wanted = inputs_hash(spec, ca, str(client.images.get(base).id))
    if image_state(client, spec.tag, wanted) in ("missing", "out of date"):
        build(client, spec, ca, base, wanted, log_dir, echo)


def build(
    client: docker.DockerClient,
    spec: ImageSpec,
    ca: bytes,
    base: str,
    wanted: str,
    log_dir: Path,
    echo: Echo,
) -> None:
    """Build `spec` FROM `base`, labelled with its inputs' hash `wanted`, streaming its steps.

    Raises UserError with the log's tail."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"build-{spec.tag.replace('/', '_').replace(':', '_')}.log"
    started = time.monotonic()
    lines: list[str] = []
    error = None
    with log_path.open("w", encoding="utf-8") as log:
        stream = client.api.build(
            fileobj=context_tar(spec, ca),
            custom_context=True,
            dockerfile=spec.dockerfile,
            tag=spec.tag,
            buildargs={"BASE_IMAGE": base},
            labels={names.LABEL_INPUTS: wanted},
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            text = chunk.get("stream", "")
            if "error" in chunk:
                error = chunk["error"]
                text = chunk["error"] + "\n"
            if not text:
                continue
            log.write(text)
            lines.extend(text.splitlines())
            if text.startswith("Step "):
                step = text.strip().split(" : ", 1)
                echo(
                    f"   {spec.what}: {step[0]} ({time.monotonic() - started:.0f}s) {step[-1][:70]}"
                )
    if error is None:
        echo(f"   {spec.what}: built {spec.tag} in {time.monotonic() - started:.0f}s")
        return
    tail = "\n".join("     " + line for line in lines[-25:])
    hint = f"the full log is {log_path}"
    if _CERT_FAILURE.search("\n".join(lines)):
        hint = (
            "it failed on certificate verification: something on this network intercepts "
            "HTTPS with a CA the build does not trust. Builds trust this host's own CA store "
            "(BUILD_CA_BUNDLE=host, the default): make the host trust that CA (Debian and "
            "Ubuntu: copy it to /usr/local/share/ca-certificates/NAME.crt and run "
            "update-ca-certificates), or set BUILD_CA_BUNDLE in .env to its PEM file, then run "
            f"invoke setup again. The full log is {log_path}"
        )
    raise UserError(f"building the {spec.what} ({spec.tag}) failed:\n{tail}\n   {hint}")


def ensure_base(client: docker.DockerClient, base: str, state_dir: Path, echo: Echo) -> str:
    """The base to build from: present, pulled, or else built from the host's Debian packages."""
    found, _ = resolve_base(lambda ref: find(client, ref), base)
    if found is not None:
        return found
    echo(f"   pulling {base} ...")
    try:
        client.images.pull(base)
        return base
    except docker.errors.APIError as exc:
        reason = str(exc.explanation or exc).strip().splitlines()[0][:160]
        echo(f"   {base} could not be pulled ({reason}).")
    local = local_base_tag()
    echo(f"   Building a local Debian base {local} from this host's Debian packages instead.")
    build_local_base(client, local, state_dir, echo)
    return local


def build_local_base(client: docker.DockerClient, tag: str, state_dir: Path, echo: Echo) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise UserError(
            "no base image could be pulled, and building one locally needs debootstrap: "
            "install it (apt-get install -y debootstrap) and run invoke setup again; or set "
            "BASE_IMAGE in .env to a Debian-based image this engine has (see: docker images)"
        )
    suite = tag.rsplit(":", 1)[1]
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="classhub-base-", dir=state_dir) as tmp:
        root = Path(tmp) / "root"
        log_path = state_dir / "logs" / "debootstrap.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        echo(f"   debootstrap {suite} (about a minute; log: {log_path}) ...")
        with log_path.open("w") as log:
            result = subprocess.run(
                [debootstrap, "--variant=minbase", "--include=ca-certificates", suite, str(root)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if result.returncode != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            raise UserError(
                f"debootstrap {suite} failed (exit {result.returncode}); it needs root and "
                "access to a Debian mirror. Last lines:\n"
                + "\n".join("     " + line for line in tail)
                + f"\n   full log: {log_path}"
            )
        archive = Path(tmp) / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
        repository, tag_part = tag.rsplit(":", 1)
        client.api.import_image_from_file(
            str(archive),
            repository=repository,
            tag=tag_part,
            changes=[
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                f"LABEL {names.LABEL_BASE}=debootstrap-{suite}",
                'CMD ["bash"]',
            ],
        )
    echo(f"   local base {tag} ready in {time.monotonic() - started:.0f}s")
