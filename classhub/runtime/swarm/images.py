"""The same build on every node: images moved by their ID, without a registry or through a site's.

A service names its image by ID (`sha256:...`), so a node can run it only once it holds exactly
that build. `spread` streams an image from the engine that built it into each node that lacks it
(the Docker API's `GET /images/{id}/get` into `POST /images/load`: `docker save | docker load`,
never a file on disk). With a site's registry (SWARM_REGISTRY) it pushes the build there once
instead, as `<registry>/<name>:<tag>`, and each node pulls it by the digest that push gave: the
same build, whatever the tag names by then (an image's ID survives a push and a pull). `missing`
names the nodes that lack it, which is what drift is: a node whose copy is another build, or
none.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

import docker
import docker.errors

from ...console import Echo
from ...errors import UserError

CHUNK = 1024 * 1024


def has(engine: docker.DockerClient, image_id: str) -> bool:
    try:
        return engine.images.get(image_id).id == image_id
    except docker.errors.ImageNotFound:
        return False


def missing(nodes: Mapping[str, docker.DockerClient], image_id: str) -> list[str]:
    """The nodes (by name) that do not hold this build."""
    return sorted(name for name, engine in nodes.items() if not has(engine, image_id))


def spread(
    source: docker.DockerClient,
    nodes: Mapping[str, docker.DockerClient],
    image_id: str,
    echo: Echo,
    registry: str = "",
    ref: str = "",
) -> list[str]:
    """Give every node that lacks the image `image_id` of `source` that build (through
    `registry` when given, as `ref` names it there); the nodes it now reached. An error names the
    node and what its engine said; the nodes before it keep their copy (again is harmless)."""
    lacking = missing(nodes, image_id)
    remote = pushed(source, image_id, registry, ref, echo) if registry and lacking else ""
    for name in lacking:
        started = time.monotonic()
        try:
            if remote:
                said = list(nodes[name].api.pull(remote, stream=True, decode=True))
            else:
                stream = source.api.get_image(image_id, chunk_size=CHUNK)
                said = list(nodes[name].api.load_image(stream, quiet=True))
        except docker.errors.APIError as exc:
            raise UserError(f"{'pulling' if remote else 'loading'} image {image_id[:19]} into "
                            f"node {name} failed: {exc.explanation or exc}") from None  # fmt: skip
        errors = [line["error"] for line in said if isinstance(line, dict) and "error" in line]
        if errors or not has(nodes[name], image_id):
            raise UserError(f"node {name} did not take image {image_id[:19]}"
                            f"{' from ' + remote if remote else ''}: "
                            f"{'; '.join(errors) or 'not there after it'}")  # fmt: skip
        echo(f"   image {image_id[7:19]} {'pulled' if remote else 'loaded'} into node {name} in "
             f"{time.monotonic() - started:.0f}s")  # fmt: skip
    return lacking


def in_registry(registry: str, ref: str) -> tuple[str, str]:
    """(repository, tag) of `ref` in the site's registry: its name without any registry host
    of its own (a part with '.' or ':' before the first '/', as Docker reads it)."""
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    return f"{registry}/{name}", tag or "latest"


def pushed(source: docker.DockerClient, image_id: str, registry: str, ref: str, echo: Echo) -> str:
    """Push the build to the site's registry as `ref` names it there; `<repository>@<digest>`,
    what nodes pull. An error says what the registry answered, and takes the tag off again."""
    repository, tag = in_registry(registry, ref)
    started = time.monotonic()
    source.images.get(image_id).tag(repository, tag)
    try:
        said = list(source.api.push(repository, tag, stream=True, decode=True))
    except docker.errors.APIError as exc:
        said = [{"error": exc.explanation or str(exc)}]
    errors = [line["error"] for line in said if isinstance(line, dict) and "error" in line]
    digests = [line["aux"]["Digest"] for line in said
               if isinstance(line, dict) and "Digest" in (line.get("aux") or {})]  # fmt: skip
    if errors or not digests:
        with contextlib.suppress(docker.errors.APIError):  # the tag alone: the build stays
            source.images.remove(f"{repository}:{tag}", noprune=True)
        raise UserError(
            f"pushing {ref or image_id[:19]} to the registry {registry} (SWARM_REGISTRY) failed: "
            f"{'; '.join(errors) or 'it gave no digest'}; check that this server reaches it and "
            "may push there (docker login " + registry.split("/")[0] + "), or empty "
            "SWARM_REGISTRY to load the images over SSH"
        )
    echo(f"   image {image_id[7:19]} pushed to {repository}:{tag} in "
         f"{time.monotonic() - started:.0f}s")  # fmt: skip
    return f"{repository}@{digests[-1]}"
