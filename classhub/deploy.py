"""The setup plan: from a validated `Config` to the ordered steps that bring host and engine in line.

Every step looks first and acts only when needed, so running setup twice changes nothing the
second time. `setup_steps` prepares the host side (`.env`, `secrets/`, passwords, the rendered hub
file); `docker_steps` the engine's side (base image, hub and notebook images, networks, volumes,
the hub's containers, the hub's users and groups); `sync_steps` only what a roster edit needs
(passwords, hub file, volumes, socket proxy, the hub's users and groups); `image_steps` only the
images (invoke build). Planning only looks: a dry run or `invoke status` changes nothing anywhere.
A step's action re-checks what it found before it acts. Nothing here deletes a file or a volume:
users and groups taken off the roster leave the hub, their volumes stay. A step never overwrites
a value it did not create.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from . import (
    acme,
    backup,
    components,
    credentials,
    disks,
    hubapi,
    hubfile,
    images,
    names,
    neighbours,
    render,
    secrets,
    tls,
    wait,
)
from .components import Part
from .console import Echo, Progress
from .errors import UserError
from .files import ensure_private_dir, file_mode, read_text, write_atomic
from .inputs.config import Config
from .inputs.settings import Settings
from .paths import Paths
from .plan import Step
from .runtime import NodeAccess, Runtime, Service

HUB_START_TIMEOUT = 180


def setup_steps(paths: Paths, config: Config, progress: Progress) -> list[Step]:
    steps = [_env_step(paths, config), _private_dir_step("secrets/", paths.secrets_dir)]
    steps += [_secret_step(paths, spec) for spec in secrets.needed(config.settings)]
    creds = credentials.load(paths)
    todo = credentials.missing(creds, config.roster.names)
    steps.append(_passwords_step(paths, config, len(todo), progress))
    cert = config.settings.tls_cert
    if components.has(config.settings, Part.FRONT_DOOR):
        steps.append(
            _self_signed_step(paths, config.settings)
            if cert is None
            else _own_cert_step(paths, config.settings, cert)
        )
    if components.has(config.settings, Part.CERTIFICATES):
        steps += acme.setup_steps(paths, config.settings)
    steps.append(hub_file_step(paths, config, creds, pending=bool(todo)))
    return steps


def reset_password_steps(paths: Paths, config: Config, name: str) -> list[Step]:
    creds = credentials.load(paths)
    state = "set" if name in creds else "none yet"

    def run() -> None:
        credentials.reset(paths, name)

    return [
        Step(f"password of {name}", state, "replace with a new random one", run),
        hub_file_step(paths, config, creds, pending=True),
    ]


def hub_file_step(
    paths: Paths, config: Config, creds: dict[str, credentials.Credential], pending: bool
) -> Step:
    """Render the hub file from `creds`; `pending`: an earlier step changes passwords first."""
    path = paths.hub_file
    shown = paths.show(path)

    def run() -> None:
        ensure_private_dir(paths.state_dir)
        # Rendered now, not at planning: an earlier step may have made or replaced passwords.
        text = render.hub_file(config.settings, config.roster, credentials.load(paths))
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text, mode=0o600)
        else:
            path.chmod(0o600)

    if not path.exists():
        return Step(shown, "missing", "write", run)
    if pending:
        return Step(shown, "present", "rewrite with the new passwords", run)
    current = read_text(path, shown, "run invoke setup")
    if current != render.hub_file(config.settings, config.roster, creds):
        return Step(shown, "out of date", "rewrite", run)
    if file_mode(path) != 0o600 or file_mode(paths.state_dir) != 0o700:
        return Step(shown, "up to date, permissions too open", "tighten to 0600 (folder 0700)", run)
    return Step(shown, "up to date")


def _env_step(paths: Paths, config: Config) -> Step:
    if not config.env_missing:
        return Step(".env", "present")

    def run() -> None:
        if not paths.env_file.exists():  # never overwrite one made meanwhile
            text = read_text(paths.env_example, ".env.example", "restore .env.example")
            write_atomic(paths.env_file, text, mode=0o600)

    return Step(".env", "missing", "create from .env.example", run)


def _self_signed_step(paths: Paths, settings: Settings) -> Step:
    cert, _ = tls.self_signed_paths(paths)
    label = paths.show(cert)
    wanted = tls.names(settings)
    missing = tls.missing_names(cert, wanted) if cert.exists() else wanted
    if cert.exists() and not missing:
        return Step(label, "present (self-signed: browsers warn; TLS_CERT and TLS_KEY replace it)")
    state = f"lacks {', '.join(missing)}" if cert.exists() else "missing"
    return Step(label, state, f"make a self-signed certificate and key for {', '.join(wanted)} "
                "(browsers will warn: set TLS_CERT and TLS_KEY for a real one)",
                lambda: tls.make_self_signed(paths, wanted))  # fmt: skip


def _own_cert_step(paths: Paths, settings: Settings, cert: Path) -> Step:
    """The administrator's TLS_CERT, checked (not changed) for the names students open."""
    missing = tls.missing_names(cert, tls.names(settings))
    if not missing:
        return Step(paths.show(cert), "names " + ", ".join(tls.names(settings)))
    return Step(paths.show(cert), f"lacks {', '.join(missing)}: browsers will refuse those "
                "addresses; get a certificate that names them (TLS_CERT)")  # fmt: skip


def _private_dir_step(label: str, path: Path) -> Step:
    if not path.exists():
        return Step(label, "missing", "create (mode 0700)", lambda: ensure_private_dir(path))
    mode = file_mode(path)
    if mode != 0o700:
        return Step(label, f"mode {mode:04o}", "tighten to 0700", lambda: ensure_private_dir(path))
    return Step(label, "present")


def _secret_step(paths: Paths, spec: secrets.SecretSpec) -> Step:
    label = f"secrets/{spec.filename}"
    state = secrets.state(paths, spec)
    if state == "missing":
        return Step(label, state, f"create ({spec.what})", lambda: secrets.ensure(paths, spec))
    if state != "present":
        return Step(label, state, "tighten to 0600", lambda: secrets.ensure(paths, spec))
    return Step(label, state)


def _passwords_step(paths: Paths, config: Config, todo: int, progress: Progress) -> Step:
    total = len(config.roster.users)
    state = f"{total - todo} of {total} users have one"
    if not todo:
        return Step("passwords", state)

    def run() -> None:
        credentials.ensure(paths, config.roster.names, progress)

    return Step("passwords", state, f"make {todo} (bcrypt hashes for the hub)", run)


def docker_steps(
    paths: Paths, config: Config, rt: Runtime, echo: Echo, build: bool = True
) -> list[Step]:
    """The engine's side of setup; `build=False` (invoke up) leaves out the base and the images."""
    settings, roster = config.settings, config.roster
    hub = settings.hub_name
    steps, rebuilt = (image_steps(paths, settings, rt, echo, roster.image_refs()) if build
                      else ([], frozenset()))  # fmt: skip

    # Networks and volumes.
    owner = neighbours.checkout_labels(paths.root)
    net_state = rt.network_state()
    if net_state == "present":
        steps.append(Step(f"network {names.network(hub)}", "present"))
    else:
        action = "create" if net_state == "missing" else (
            "recreate with a fixed hub address (stops the hub and running servers; files are kept)"
        )  # fmt: skip
        steps.append(Step(f"network {names.network(hub)}", net_state, action,
                          lambda: rt.ensure_network(echo, owner)))  # fmt: skip
    for network in components.networks(settings):
        if rt.network_exists(network.name):
            steps.append(Step(f"network {network.name}", "present"))
        else:
            steps.append(Step(f"network {network.name}", "missing", f"create (internal: {network.who})",
                              partial(rt.ensure_internal_network, network.name,
                                      network.kind)))  # fmt: skip
    steps += volume_steps(rt, settings, roster, echo)

    # The hub's components (components.of), then its users and groups. The database's move or
    # schema upgrade comes right before the hub starts on it.
    api = rt.hub_api(paths, settings)
    missing = rt.missing_group_images(roster)
    if missing:
        raise UserError("\n".join(missing))
    # Their recipes need the hub's network; while it is to be made, none is planned yet.
    planned = {s.component.part: s for s in rt.services(paths, settings)} if (
        net_state == "present") else {}  # fmt: skip
    hub_action = False
    for component in components.of(settings):
        service = planned.get(component.part)
        step = _component_step(paths, config, rt, echo, api, component, service, rebuilt)
        if component.part is Part.HUB:
            move = _database_move_steps(paths, settings, rt, echo)
            steps += move
            if step.run is not None and not move:
                deferred = component.image.tag in rebuilt or net_state != "present"
                steps += _schema_steps(paths, config, rt, echo, deferred=deferred)
        hub_action = hub_action or step.run is not None
        steps.append(step)
    steps += _left_steps(rt, settings)
    steps.append(hub_sync_step(rt, settings, roster, api, echo, hub_changes=hub_action))
    if components.has(settings, Part.CERTIFICATES):  # last: the CA may take a while to answer
        steps.append(acme.certificate_step(paths, settings, rt.restart_container, echo))
    return steps


# The parts the settings can take away again: their containers, their rows, and the setting that
# took them away, as it reads now.
_OPTIONAL = (
    (Part.FRONT_DOOR, names.nginx_container, "front door {} (nginx)",
     lambda settings: f"PROXY={settings.proxy}"),
    (Part.CERTIFICATES, names.acme_container, "certificate renewer {}",
     lambda settings: f"ACME={str(settings.acme).lower()}"),
)  # fmt: skip


def _left_steps(rt: Runtime, settings) -> list[Step]:
    """The bundled nginx of an earlier PROXY=nginx, which PROXY no longer asks for (it would keep
    HTTPS_PORT and HTTP_PORT from the site's own nginx), and the renewer of an earlier ACME=true
    (certbot's state stays in secrets/acme/). They go: neither holds data of its own."""
    steps = []
    for part, container, what, setting in _OPTIONAL:
        if components.has(settings, part):
            continue
        name = container(settings.hub_name)
        found = rt.container_status(name)
        if found is not None:
            steps.append(Step(what.format(name), found, f"remove ({setting(settings)})",
                              partial(rt.remove_container, name)))  # fmt: skip
    return steps


def _component_step(
    paths: Paths,
    config: Config,
    rt: Runtime,
    echo: Echo,
    api: hubapi.HubAPI,
    component: components.Component,
    planned: Service | None,
    rebuilt: frozenset[str],
) -> Step:
    """The step for one of the hub's components: made or replaced only when its spec changed
    (`planned` is None while the hub's network is still to be made)."""
    settings = config.settings
    if planned is not None:
        state, action = rt.service_state(planned)
    else:
        found = rt.container_status(component.container)
        state = found or "missing"
        action = "create and start" if found is None else "replace (new network)"
    if component.image.tag in rebuilt and not action:
        action = "replace if the new image differs"
    if action and component.part is Part.HUB and action != "create and start":
        action += " (user servers keep running)"

    def run() -> None:
        # Made now, not at planning: the network or the image may just have been made.
        service = _service(rt, paths, settings, component.part)
        started = int(time.time())
        if not rt.ensure_service(service, echo):
            echo(f"   {service.what}: already as planned (an image rebuilt meanwhile)")
            return
        if component.part is Part.HUB:
            _wait_for_hub(rt, settings, api, echo)
        else:
            rt.wait_ready(component.part, since=started)

    return Step(component.row, state, action or "none", run if action else None)


def _schema_steps(
    paths: Paths, config: Config, rt: Runtime, echo: Echo, deferred: bool
) -> list[Step]:
    """Before a hub (re)starts on an existing database: the step that upgrades its schema when the
    hub image's JupyterHub needs a newer one, after a full backup. Checked now when the image and
    the database are at hand; after a rebuild (or before the networks or the database exist)
    when the step runs."""
    settings, roster, hub = config.settings, config.roster, config.settings.hub_name
    postgres = components.has(settings, Part.DATABASE)
    if not (rt.has_postgres() if postgres else rt.has_sqlite()):
        return []  # a new hub: JupyterHub makes its tables at the right revision
    label = "hub database schema"
    # The check mounts what the hub mounts: never before the volume step made the data volume
    # (Docker would make a missing one itself, unlabelled, and destroy would not find it).
    ready = names.hub_data_volume(hub) in rt.volume_names() and (
        not postgres or rt.container_status(names.db_container(hub)) == "running"
    )
    if not deferred and ready:
        current, head = rt.schema(paths, settings)
        if current == "none":
            return [Step(label, "no tables yet: JupyterHub makes them at its revision")]
        if current == head:
            return [Step(label, f"at JupyterHub's revision {head}")]
        state = f"revision {current}; this JupyterHub needs {head}"
    else:
        state = "checked against the hub image before the hub starts"

    def upgrade() -> None:
        current, head = rt.schema(paths, settings)
        if current in ("none", head):
            echo(f"   at JupyterHub's revision {head}: nothing to upgrade")
            return
        folder = backup.default_folder(settings, suffix="-before-upgrade")
        echo(
            f"   revision {current}, this JupyterHub needs {head}: a full backup first, to {folder}"
        )
        backup.write(rt, paths, settings, roster, folder, echo)
        if rt.container_status(names.hub_container(hub)) == "running":
            echo("   stopping the hub for the upgrade (user servers keep running)")
            rt.stop_container(names.hub_container(hub))
        echo("   " + rt.upgrade_schema(paths, settings))

    action = "a full backup, then JupyterHub's upgrade of the schema (only if it needs one)"
    return [Step(label, state, action, upgrade)]


def _database_move_steps(paths: Paths, settings, rt: Runtime, echo: Echo) -> list[Step]:
    """With HUB_DB=postgres on a hub whose database is still its sqlite file: a step that copies
    it into the new PostgreSQL before the hub starts on it. HUB_DB=sqlite on a hub whose data is
    in PostgreSQL is refused: there is no way back, and a new empty sqlite would hide the data.
    The sqlite file is the hub's database until the copy has finished and renamed it: a copy that
    was interrupted is made again, in place of what it left in PostgreSQL."""
    hub = settings.hub_name
    if not components.has(settings, Part.DATABASE):
        if rt.has_postgres() and not rt.has_sqlite():
            raise UserError(
                f"HUB_DB=sqlite, but this hub's database is in PostgreSQL (volume "
                f"{names.db_volume(hub)}): classhub moves a hub from sqlite to PostgreSQL, not "
                "back. Set HUB_DB=postgres in .env and run invoke setup. Nothing was changed"
            )
        return []
    if not rt.has_sqlite():
        return []

    def move() -> None:
        if rt.container_status(names.hub_container(hub)) == "running":
            echo("   stopping the hub while its database moves (user servers keep running)")
            rt.stop_container(names.hub_container(hub))
        echo("   " + rt.move_to_postgres(paths))

    state = f"sqlite, in volume {names.hub_data_volume(hub)}"
    if rt.has_postgres():
        state += " (a copy into PostgreSQL was begun and did not finish)"
    action = (f"copy every row into PostgreSQL (in place of anything there) before the hub starts "
              f"on it; the sqlite file is kept as {hubfile.SQLITE_MOVED}")  # fmt: skip
    return [Step("hub database", state, action, move)]


def _service(rt: Runtime, paths: Paths, settings: Settings, part: Part) -> Service:
    """The engine's recipe for this hub's component of that part, made now."""
    (found,) = [s for s in rt.services(paths, settings) if s.component.part is part]
    return found


def start_database(paths: Paths, config: Config, rt: Runtime, echo: Echo) -> None:
    """Only the hub's PostgreSQL and what it needs (networks, its volume), running and ready:
    restore loads a dump into it before the hub first starts."""
    rt.ensure_network(echo, neighbours.checkout_labels(paths.root))
    for network in components.networks(config.settings):
        rt.ensure_internal_network(network.name, network.kind)
    service = _service(rt, paths, config.settings, Part.DATABASE)
    for volume in service.component.volumes:
        rt.ensure_volume(volume.name, volume.kind)
    rt.ensure_service(service, echo)
    rt.wait_ready(Part.DATABASE, since=int(time.time()))


def volume_steps(rt: Runtime, settings, roster, echo: Echo) -> list[Step]:
    """The hub's data volume, then the roster's user and group volumes (created, never removed)."""
    hub = settings.hub_name
    steps = []
    have = rt.volume_names()
    for volume in components.volumes(settings):
        if volume.name in have:
            steps.append(Step(f"volume {volume.name}", "present"))
        else:
            steps.append(Step(f"volume {volume.name}", "missing", f"create ({volume.what})",
                              partial(rt.ensure_volume, volume.name, volume.kind)))  # fmt: skip
    wanted = roster.volumes(hub)
    unfinished = rt.unfinished_volumes()  # a killed run made them, but gave them no owner yet
    missing = {
        name: kind for name, kind in wanted.items() if name not in have or name in unfinished
    }
    store = settings.disk_store
    limits = disks.wanted(settings, roster)
    sizes = {name: size for name, (_, size) in limits.items()}
    where = ", size-limited in DISK_STORE" if store else ""
    for kind, label, how in (
        ("user", "user volumes (homes)", "owner 1000:100"),
        ("group", "group volumes", "owner 1000:100, mode 2775"),
    ):
        total = sum(k == kind for k in wanted.values())
        todo = {n: k for n, k in missing.items() if k == kind}
        state = f"{total - len(todo)} of {total} present"
        left = sum(name in unfinished for name in todo)
        if left:
            state += f"; {left} made by an interrupted run, without their owner yet"
        if todo:

            def run(todo: dict[str, str] = todo) -> None:
                rt.create_volumes(todo, settings.notebook_image, echo, store, sizes)

            action = f"create {len(todo) - left} ({how}{where})" if len(todo) > left else ""
            if left:
                action += (", and " if action else "") + f"give {left} their owner ({how})"
            steps.append(Step(label, state, action, run))
        else:
            steps.append(Step(label, state))
    steps.append(disk_limits_step(rt, settings, limits, set(wanted) - set(missing)))
    shared = settings.shared_data
    if shared and not shared.startswith("/"):
        if shared in have and shared not in unfinished:
            steps.append(Step(f"shared data volume {shared}", "present"))
        else:

            def make_shared() -> None:
                rt.create_volumes({shared: "shared"}, settings.notebook_image, echo)

            state = "made by an interrupted run, without its owner" if shared in have else "missing"
            steps.append(Step(f"shared data volume {shared}", state,
                              "create (owner 1000:100, mode 2775)", make_shared))  # fmt: skip
    return steps


def disk_limits_step(
    rt: Runtime, settings, sizes: dict[str, tuple[str, int]], present: set[str]
) -> Step:
    """Whether the homes' and group folders' sizes are enforced, and the limits that differ
    from `sizes` (disks.wanted: set in place, no server restarts, no file moves)."""
    label = "disk limits"
    if not settings.disk_store:
        return Step(label, "not enforced (DISK_STORE is not set; docs/disk-limits.md)")
    store = settings.disk_store
    try:
        usage = rt.disk_usage(present)
    except UserError as exc:
        return Step(label, f"enforced in {store}; the sizes cannot be read: {exc}")
    outside = sorted(name for name, used in usage.items() if used is None)
    changed = {name: sizes[name] for name, used in usage.items()
               if used is not None and used["limit"] != sizes[name][1]}  # fmt: skip
    full = sorted(name for name, used in usage.items()
                  if used and used["limit"] and used["used"] >= disks.NEAR_FULL * used["limit"])  # fmt: skip
    state = f"enforced in {store}: {len(usage) - len(outside)} folder(s)"
    if full:
        state += f"; at 90% or more: {', '.join(full)}"
    if outside:
        state += (f"; not limited, made before DISK_STORE (docs/disk-limits.md moves them): "
                  f"{', '.join(outside)}")  # fmt: skip
    if not changed:
        return Step(label, state)
    return Step(label, state, f"set {len(changed)} size limit(s) from the roster",
                lambda: rt.set_disk_limits(changed))  # fmt: skip


def hub_sync_step(
    rt: Runtime,
    settings,
    roster,
    api: hubapi.HubAPI,
    echo: Echo,
    hub_changes: bool = False,
) -> Step:
    """The hub's users and groups brought in line with the roster, on the running hub."""

    def sync() -> None:
        _wait_for_hub(rt, settings, api, echo)
        hubapi.apply_drift(
            api, hubapi.drift(api, roster, settings.open_to_all, bool(settings.groups_claim))
        )

    if hub_changes or not api.answers():
        return Step("hub users and groups", "hub not answering yet",
                    "bring in line with the roster once it answers", sync)  # fmt: skip
    change = hubapi.drift(api, roster, settings.open_to_all, bool(settings.groups_claim))
    if change.empty:
        return Step("hub users and groups", "in step with the roster")
    return Step("hub users and groups", "differ from the roster", change.describe(), sync)


def sync_steps(
    paths: Paths, config: Config, rt: Runtime, echo: Echo, progress: Progress
) -> list[Step]:
    """After a roster edit: passwords, the hub file (which the hub and its socket proxy re-read:
    a group's new image passes at once), volumes and the running hub's users and groups. Builds
    nothing and replaces no container. A hub that is not running gets its users and groups when
    it starts (invoke up)."""
    settings = config.settings
    api = rt.hub_api(paths, settings)
    steps = setup_steps(paths, config, progress)
    steps += volume_steps(rt, settings, config.roster, echo)
    if rt.container_status(names.hub_container(settings.hub_name)) is None or not api.answers():
        steps.append(Step("hub users and groups", "hub not running: invoke up brings them in"))
    else:
        steps.append(hub_sync_step(rt, settings, config.roster, api, echo))
    return steps


def image_steps(
    paths: Paths, settings, rt: Runtime, echo: Echo, group_images: tuple[str, ...] = ()
) -> tuple[list[Step], frozenset[str]]:
    """The base (only looked for here; pulling or building it is an action), then the images
    of the hub's components and the notebook image; on a swarm, each node's (with the
    roster's `group_images`).

    Also returns the tags of the images that will be built."""
    steps = []
    base_ref, base_state = images.resolve_base(rt.image, settings.base_image)
    chosen: dict[str, str] = {}

    def ensure_base() -> None:
        chosen["base"] = rt.ensure_base(settings.base_image, paths.state_dir, echo)

    if base_ref is None:
        steps.append(
            Step(f"base image {settings.base_image}", base_state,
                 "pull (or build a local Debian base if it cannot be pulled)", ensure_base)
        )  # fmt: skip
    else:
        chosen["base"] = base_ref
        steps.append(Step(f"base image {settings.base_image}", base_state))

    ca = images.ca_bundle(settings)
    specs = [images.component_spec(paths, image) for image in components.images(settings)]
    specs.insert(1, images.notebook_spec(paths, settings))  # after the hub's, as it always was
    built = []
    for spec in specs:
        step = _image_step(rt, paths, spec, ca, base_ref, chosen, echo)
        steps.append(step)
        if step.changes:
            built.append(spec.tag)
    steps += node_image_steps(paths, settings, rt, frozenset(built), echo, group_images)
    return steps, frozenset(built)


def node_image_steps(
    paths: Paths, settings, rt: Runtime, built: frozenset[str], echo: Echo,
    group_images: tuple[str, ...] = (),
) -> list[Step]:  # fmt: skip
    """On a swarm, one step a node: the same builds as this server's, loaded by ID (or pulled
    from SWARM_REGISTRY) where it lacks them (or will, once `built` are built). None without a
    swarm."""
    refs = components.node_images(settings, group_images)
    access = NodeAccess(paths.known_hosts, settings.node_ssh_key, settings.swarm_registry)
    steps = []
    for hostname, lacks in rt.node_images(refs, access).items():
        label = f"images on node {hostname}"
        if isinstance(lacks, str):
            steps.append(Step(label, lacks))
            continue
        stale = sorted(set(lacks) | (set(refs) & built))
        if not stale:
            steps.append(Step(label, "up to date"))
            continue
        state = f"lacks {', '.join(sorted(lacks))}" if lacks else "to be built anew here"

        def run(hostname: str = hostname) -> None:
            rt.load_node_images(hostname, refs, access, echo)

        how = f"pull the images from {access.registry}" if access.registry else "load the images"
        steps.append(Step(label, state, how, run))
    return steps


def _image_step(rt: Runtime, paths, spec, ca, base_ref, chosen, echo) -> Step:
    label = f"{spec.what} {spec.tag}"
    found = rt.image(spec.tag)
    labels = None if found is None else found.labels
    if base_ref is None:
        state = images.state_of(labels, None)
    else:
        base = rt.image(base_ref)
        state = images.state_of(labels, images.inputs_hash(spec, ca, base.id if base else ""))
    if state in ("up to date", "not built by classhub"):
        return Step(label, state if state == "up to date" else f"{state}: used as it is")

    def run() -> None:  # the base may be new by now: build re-checks against it
        rt.build(spec, ca, chosen["base"], paths.state_dir / "logs", echo)

    return Step(label, state, "build" if state == "missing" else "rebuild", run)


def _wait_for_hub(rt: Runtime, settings, api: hubapi.HubAPI, echo: Echo) -> None:
    wait.until(
        f"the hub at {api.root}",
        api.answers,
        HUB_START_TIMEOUT,
        echo,
        on_timeout=lambda: (
            "   the hub's last log lines:\n" + rt.logs(names.hub_container(settings.hub_name))
        ),
    )
