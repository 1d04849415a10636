"""classhub: one Linux server with Docker becomes a multi-user JupyterHub.

The package holds all of classhub's logic; `tasks.py` and `noxfile.py` only call into it.
Nothing here reads the environment or the working directory at import time: every function is
given a `Paths` and, where it matters, the environment to read.

How data flows, and where each part is:

    inputs/       .env and userlist, read and checked (settings, roster) -> Config
    components    which parts this hub has (hub, socket proxy, firewall, database, nginx)
    deploy, plan  the plans: the ordered steps that bring host and engine in line with Config
    runtime/      the engine behind the plans: the Runtime protocol, single_host/ (Docker),
                  swarm/ (Docker Swarm mode, under way; these two alone import docker-py) and
                  fake (in memory, for unit tests)
    commands      one function per task: load, plan, apply, report
    hubfile,      the contract with the hub: the hub file's format and every Docker name (the
    names         hub image copies these two; standard library only)

What makes the host's files: secrets, credentials, tls, render. What talks to the running hub:
hubapi, prewarm, rehearse, student. Backups: backup (what is in one; the runtime moves the
bytes). Where a group's volume is made: planned in `deploy.volume_steps`, made by
`runtime.single_host.stack.create_volumes`. Where a second engine goes: `runtime/`, beside
`single_host/`.
"""
