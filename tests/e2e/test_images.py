"""Image builds on the real engine: inputs hashed into a label, and certificate failures explained.

These machines reach the package index only through a TLS-intercepting proxy (shared/
ENVIRONMENT.md), so a build that trusts no extra CA fails on certificate verification for real, and
every hub of these tests builds with BUILD_CA_BUNDLE unset: the host's own store, with no edit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from classhub import images, names
from classhub.errors import UserError
from classhub.inputs import config
from classhub.paths import Paths
from classhub.runtime.single_host import builder

from .conftest import Hub


def test_builds_trust_the_hosts_own_ca_store_with_no_edit(hub: Hub):
    assert "BUILD_CA_BUNDLE" not in hub.paths.env_file.read_text()  # the default: host
    assert _settings(hub).build_ca_bundle == Path("/etc/ssl/certs/ca-certificates.crt")
    assert f"notebook image {hub.image}" in hub.invoke("status").stdout


def test_built_images_carry_the_hash_of_their_inputs(hub: Hub):
    for tag in (names.hub_image(hub.name), hub.image):
        label = hub.client.images.get(tag).labels.get(names.LABEL_INPUTS)
        assert label and len(label) == 32, tag
    assert f"hub image {names.hub_image(hub.name)}" in hub.invoke("status").stdout


def test_a_build_failing_on_certificates_points_at_build_ca_bundle(hub: Hub, tmp_path):
    base, _ = images.resolve_base(lambda ref: builder.find(hub.client, ref), "debian:bookworm-slim")
    assert base is not None, "the hub's setup left a base image"
    spec = images.notebook_spec(Paths.at(hub.paths.root), _settings(hub))
    spec = images.ImageSpec(spec.what, "classhub-e2e-nocert:latest", spec.dockerfile, spec.files)
    lines: list[str] = []
    with pytest.raises(UserError) as failure:
        builder.ensure(hub.client, spec, b"", base, tmp_path, lines.append)
    message = str(failure.value)
    assert "failed on certificate verification" in message
    assert "BUILD_CA_BUNDLE" in message and "update-ca-certificates" in message
    assert builder.find(hub.client, "classhub-e2e-nocert:latest") is None


def _settings(hub: Hub):
    return config.load(hub.paths, {}).settings
