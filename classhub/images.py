"""Images: what the hub's and the notebook image are built from, and when one is up to date.

The engine runs the builds (`runtime.Runtime.build`; on Docker `runtime/single_host/builder.py`,
which also pulls the base or makes a local Debian one). Rules that hold here:
- A build's context is assembled from an explicit list of files (never the whole checkout, so
  `secrets/` can never reach an image), plus `build-ca.pem`: BUILD_CA_BUNDLE's content, or empty.
- Every image classhub builds carries the label `classhub.inputs`, a hash of everything the build
  reads: the files, the Dockerfile, the CA bundle and the base image's ID. An image whose label
  matches is not rebuilt; an image without the label was not built by classhub and is left alone.
- The base image is used when present, pulled when not; when the pull fails, a base is built from
  the host's Debian packages (debootstrap, then an import) and used instead.
- Builds stream their steps as progress and keep the full log under state/logs/; a failure ends
  with the log's tail, and certificate failures point at BUILD_CA_BUNDLE.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import components, hubfile, names
from .components import Image
from .errors import UserError
from .inputs.settings import Settings
from .paths import Paths


@dataclass(frozen=True)
class ImageSpec:
    what: str  # "hub image"
    tag: str
    dockerfile: str  # path inside the context
    files: tuple[tuple[str, Path], ...]  # (path inside the context, source file)


def component_spec(paths: Paths, image: Image) -> ImageSpec:
    """How one of the hub's components' images is built: from its folder's Dockerfile and files."""
    files = _COMPONENT_FILES[image.folder](paths)
    return ImageSpec(image.what, image.tag, f"{image.folder}/Dockerfile", files)


def hub_spec(paths: Paths, hub_name: str) -> ImageSpec:
    return component_spec(paths, components.hub_image(hub_name))


def _hub_files(paths: Paths) -> tuple[tuple[str, Path], ...]:
    hub = paths.root / "hub"
    package = Path(hubfile.__file__).parent
    files = [
        ("hub/Dockerfile", hub / "Dockerfile"),
        ("hub/requirements.txt", hub / "requirements.txt"),
        ("hub/proxy/package.json", hub / "proxy" / "package.json"),
        ("hub/proxy/package-lock.json", hub / "proxy" / "package-lock.json"),
        ("hub/jupyterhub_config.py", hub / "jupyterhub_config.py"),
        ("classhub/__init__.py", package / "__init__.py"),
        ("classhub/hubfile.py", package / "hubfile.py"),
        ("classhub/names.py", package / "names.py"),
    ]
    files += [
        (f"hub/{p.relative_to(hub).as_posix()}", p)
        for p in sorted((hub / "classhub_hub").rglob("*"))
        if p.suffix in (".py", ".html") and "__pycache__" not in p.parts
    ]
    return tuple(files)


# singleuser/classhub_notebook/: the server extension, the kernels' module and their config files.
NOTEBOOK_EXTENSION_FILES = ("__init__.py", "classhub_kernel.py", "jupyter_server_config.json",
                            "ipython_kernel_config.json", "server_config.json")  # fmt: skip


def notebook_spec(paths: Paths, settings: Settings) -> ImageSpec:
    folder = paths.root / "singleuser"
    files = (
        ("singleuser/Dockerfile", folder / "Dockerfile"),
        ("singleuser/base-requirements.txt", folder / "base-requirements.txt"),
        ("singleuser/requirements.txt", folder / "requirements.txt"),
        ("singleuser/overrides.json", folder / "overrides.json"),
        ("singleuser/classhub-lab-defaults.json", folder / "classhub-lab-defaults.json"),
        *(
            (f"singleuser/classhub_notebook/{name}", folder / "classhub_notebook" / name)
            for name in NOTEBOOK_EXTENSION_FILES
        ),
        ("singleuser/start-notebook", folder / "start-notebook"),
        ("singleuser/language-servers", folder / "language-servers"),
    )
    patches = tuple(
        (f"singleuser/patches/{p.name}", p)
        for p in sorted((folder / "patches").iterdir())
        if p.is_file()
    )
    return ImageSpec(
        "notebook image", settings.notebook_image, "singleuser/Dockerfile", files + patches
    )


def grading_spec(paths: Paths, hub_name: str) -> ImageSpec:
    """The grading image (`invoke autograde`), built FROM the class's image."""
    folder = paths.root / "grading"
    files = (("grading/Dockerfile", folder / "Dockerfile"),
             ("grading/requirements.txt", folder / "requirements.txt"),
             ("grading/classhub-grade", folder / "classhub-grade"))  # fmt: skip
    return ImageSpec("grading image", names.grading_image(hub_name), "grading/Dockerfile", files)


def _db_files(paths: Paths) -> tuple[tuple[str, Path], ...]:
    """The PostgreSQL image's (HUB_DB=postgres)."""
    folder = paths.root / "db"
    return (("db/Dockerfile", folder / "Dockerfile"),
            ("db/start-postgres", folder / "start-postgres"))  # fmt: skip


def _nginx_files(paths: Paths) -> tuple[tuple[str, Path], ...]:
    """The bundled front door's image (PROXY=nginx); its configuration is mounted, not built in."""
    folder = paths.root / "nginx"
    return (("nginx/Dockerfile", folder / "Dockerfile"),
            ("nginx/start-nginx", folder / "start-nginx"))  # fmt: skip


def _acme_files(paths: Paths) -> tuple[tuple[str, Path], ...]:
    """The certificate renewer's image (ACME=true)."""
    folder = paths.root / "acme"
    return (("acme/Dockerfile", folder / "Dockerfile"),
            ("acme/renew-certificates", folder / "renew-certificates"))  # fmt: skip


_COMPONENT_FILES = {
    "hub": _hub_files,
    "db": _db_files,
    "nginx": _nginx_files,
    "acme": _acme_files,
}


def ca_bundle(settings: Settings) -> bytes:
    if settings.build_ca_bundle is None:
        return b""
    try:
        return settings.build_ca_bundle.read_bytes()
    except OSError as exc:
        raise UserError(
            f"BUILD_CA_BUNDLE={settings.build_ca_bundle} cannot be read ({exc.strerror}); "
            "point it at a readable PEM file, or write host or none"
        ) from None


def inputs_hash(spec: ImageSpec, ca: bytes, base_id: str) -> str:
    digest = hashlib.sha256()
    for arcname, source in spec.files:
        digest.update(arcname.encode() + b"\0")
        digest.update(_read(source) + b"\0")
        digest.update(b"x" if source.stat().st_mode & 0o111 else b"-")
    digest.update(b"build-ca.pem\0" + ca + b"\0base\0" + base_id.encode())
    return digest.hexdigest()[:32]


def context_tar(spec: ImageSpec, ca: bytes) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for arcname, source in spec.files:
            _add(tar, arcname, _read(source), 0o755 if source.stat().st_mode & 0o111 else 0o644)
        _add(tar, "build-ca.pem", ca, 0o644)
    buffer.seek(0)
    return buffer


def _read(source: Path) -> bytes:
    try:
        return source.read_bytes()
    except OSError as exc:
        raise UserError(
            f"{source} cannot be read ({exc.strerror}); it is part of classhub: restore it "
            "with: git checkout -- ."
        ) from None


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


# --- an image's state ------------------------------------------------------------------------


def state_of(labels: Mapping[str, str] | None, wanted: str | None) -> str:
    """An image's state from its labels (None: the engine does not have it)."""
    if labels is None:
        return "missing"
    label = labels.get(names.LABEL_INPUTS)
    if label is None:
        return "not built by classhub"
    return "up to date" if label == wanted else "out of date"


# --- the base image -------------------------------------------------------------------------


def host_codename() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"') or "bookworm"
    except OSError:
        pass
    return "bookworm"


def local_base_tag() -> str:
    return f"{names.LOCAL_BASE_IMAGE}:{host_codename()}"


def resolve_base(lookup: Callable[[str], object | None], base: str) -> tuple[str | None, str]:
    """Which base the builds use without pulling: (image reference or None, state to show).
    `lookup(ref)` is the engine's image of that reference, or None."""
    if lookup(base) is not None:
        return base, "present"
    local = local_base_tag()
    if lookup(local) is not None:
        return (
            local,
            f"not here; using the local Debian base {local} built when it could not be pulled",
        )
    return None, "not here"
