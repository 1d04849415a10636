"""The same build on every node, without a registry: images moved by their ID.

A service names its image by ID (`sha256:...`), so a node can run it only once it holds exactly
that build. `spread` streams an image from the engine that built it into each node that lacks it
(the Docker API's `GET /images/{id}/get` into `POST /images/load`: `docker save | docker load`,
never a file on disk); `missing` names the nodes that lack it, which is what drift is: a node whose
copy is another build, or none.
"""

from __future__ import annotations

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
) -> list[str]:
    """Load the image `image_id` of `source` into every node that lacks it; the nodes it was
    loaded into. An error names the node and what its engine said; the nodes before it keep
    their copy (loading again is harmless)."""
    loaded = []
    for name in missing(nodes, image_id):
        started = time.monotonic()
        stream = source.api.get_image(image_id, chunk_size=CHUNK)
        try:
            said = list(nodes[name].api.load_image(stream, quiet=True))
        except docker.errors.APIError as exc:
            raise UserError(f"loading image {image_id[:19]} into node {name} failed: "
                            f"{exc.explanation or exc}") from None  # fmt: skip
        errors = [line["error"] for line in said if isinstance(line, dict) and "error" in line]
        if errors or not has(nodes[name], image_id):
            raise UserError(f"node {name} did not take image {image_id[:19]}: "
                            f"{'; '.join(errors) or 'not there after loading'}")  # fmt: skip
        echo(f"   image {image_id[7:19]} loaded into node {name} in "
             f"{time.monotonic() - started:.0f}s")  # fmt: skip
        loaded.append(name)
    return loaded
