"""Docker Swarm mode as classhub's engine (issue "Docker Swarm mode"), built up piece by piece.

What is here so far:
- `images`: every node runs the same build without a registry: an image is loaded into each
  node by its ID, streamed from the engine that built it (`docker save | docker load`), and a
  node that lacks it is named.
Not yet: the Runtime itself (nodes joined and checked, students' servers as services, files that
follow them, isolation across nodes). Until then no setting selects this engine.
"""
