"""Docker Swarm mode (issue "Docker Swarm mode"), on a real swarm of nested engines on this
machine (tests/e2e/swarm.py): a manager and two workers.

So far: the same build on every node without a registry (item 3's mechanism,
classhub/runtime/swarm/images.py). The image is the shared hub's notebook image, as students'
services will run it.
"""

from __future__ import annotations

import time

import pytest

from classhub.runtime.swarm import images

from .conftest import Hub
from .swarm import Swarm, nested_swarm


@pytest.fixture(scope="module")
def swarm(hub: Hub) -> Swarm:
    with nested_swarm(hub.client, f"{hub.name}sw") as formed:
        yield formed


def test_an_image_reaches_every_node_by_its_id_and_a_service_there_runs_that_build(
    hub: Hub, swarm: Swarm
):
    image = hub.client.images.get(hub.image)
    assert images.missing(swarm.nodes, image.id) == sorted(swarm.nodes)
    said: list[str] = []
    assert sorted(images.spread(hub.client, swarm.nodes, image.id, said.append)) == sorted(
        swarm.nodes
    )
    assert images.missing(swarm.nodes, image.id) == []
    assert len(said) == len(swarm.nodes) and all("loaded into node" in line for line in said)
    assert images.spread(hub.client, swarm.nodes, image.id, said.append) == []  # nothing again
    # A service that names the build by its ID runs it on the worker it is placed on.
    service = swarm.manager.services.create(  # its command replaces the image's entrypoint
        image.id, ["sleep", "300"], name="same-build", user="1000:100",
        constraints=["node.hostname==worker2"],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (tasks := service.tasks(filters={"desired-state": "running"})) or (
            tasks[0]["Status"]["State"] != "running"
        ):
            assert time.monotonic() < deadline, tasks
            time.sleep(0.5)
        (running,) = swarm.nodes["worker2"].containers.list(filters={"name": "same-build"})
        assert running.attrs["Image"] == image.id
    finally:
        service.remove()


def test_a_node_without_the_build_is_named_and_gets_it_again(hub: Hub, swarm: Swarm):
    image = hub.client.images.get(hub.image)
    images.spread(hub.client, swarm.nodes, image.id, lambda line: None)
    swarm.nodes["worker1"].images.remove(image.id, force=True)
    assert images.missing(swarm.nodes, image.id) == ["worker1"]
    assert images.spread(hub.client, swarm.nodes, image.id, lambda line: None) == ["worker1"]
    assert images.missing(swarm.nodes, image.id) == []
