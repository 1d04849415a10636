"""Who holds a port on this host (classhub/neighbours.py); the hub-name checks run in the e2e tests."""

from __future__ import annotations

import os
import socket

from classhub.neighbours import port_holder


def test_a_free_port_has_no_holder_and_a_listening_one_names_its_program():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        holder = port_holder("127.0.0.1", port)
        assert holder is not None and holder.startswith("the program ")
        assert f"pid {os.getpid()}" in holder
    assert port_holder("127.0.0.1", port) is None
