"""classhub's tasks. `invoke --list` lists them; docs/tasks.md explains each.

Thin on purpose: each task parses its arguments and calls one function of `classhub.commands`.
"""

import os
from pathlib import Path

from invoke import task

from classhub import commands
from classhub.console import Output, user_errors
from classhub.paths import Paths

PATHS = Paths.at(Path(__file__).parent)


@task(
    help={
        "dry_run": "print the plan (component, state, action) and change nothing",
        "files_only": "only the files: .env, secrets, passwords, state/hub.json; no Docker",
        "verbose": "print every row of the plan and the nginx block, not only what changes",
    },
)
def setup(c, dry_run=False, files_only=False, verbose=False):
    """Set up this hub from .env and userlist, then print the nginx block, the admin's login and
    how students reach the hub."""
    with user_errors():
        commands.setup(
            PATHS, os.environ, Output(), dry_run=dry_run, files_only=files_only, verbose=verbose
        )


@task
def engine(c):
    """Install (Debian/Ubuntu docker.io) and start a Docker engine if none answers. Needs root."""
    with user_errors():
        commands.engine(os.environ, Output())


@task
def up(c):
    """Start the hub again after invoke down (images and settings as setup left them)."""
    with user_errors():
        commands.up(PATHS, os.environ, Output())


@task
def down(c):
    """Stop the hub and every user's server. All data stays in the volumes."""
    with user_errors():
        commands.down(PATHS, os.environ, Output())


@task(
    help={
        "user": "show this user's server instead of the hub",
        "tail": "how many lines from the end (default 100)",
        "follow": "keep printing new lines until Ctrl-C",
    },
)
def logs(c, user="", tail=100, follow=False):
    """Print the hub's log (or a user's server's, with --user NAME)."""
    with user_errors():
        commands.logs(PATHS, os.environ, Output(), user, tail, follow)


@task(
    iterable=["group"],
    help={
        "name": "the new user's name (letters, digits, '.', '_', '-')",
        "group": "a group to put them in; repeat for several",
        "admin": "make them an admin of the hub",
    },
)
def add_user(c, name, group=None, admin=False):
    """Add NAME to userlist and the running hub, make their password and print it."""
    with user_errors():
        commands.add_user(PATHS, os.environ, Output(), name, group or [], admin)


@task(
    help={
        "name": "the group's name",
        "members": "comma-separated users (already on the roster) to add to it",
    },
)
def add_group(c, name, members=""):
    """Create group NAME with its shared folder volume; --members a,b adds them to it."""
    with user_errors():
        members_list = [m.strip() for m in members.split(",") if m.strip()]
        commands.add_group(PATHS, os.environ, Output(), name, members_list)


@task(help={"dry_run": "print what would be built and build nothing"})
def build(c, dry_run=False):
    """Rebuild the hub and notebook images when their files changed (e.g. singleuser/)."""
    with user_errors():
        commands.build(PATHS, os.environ, Output(), dry_run)


@task(help={"dry_run": "print the plan and change nothing"})
def sync(c, dry_run=False):
    """Bring the running hub in line with userlist: add, move and remove users and groups."""
    with user_errors():
        commands.sync(PATHS, os.environ, Output(), dry_run)


@task(
    help={
        "name": "the user to take off the roster and the hub",
        "purge": "also delete their home volume, after showing it and asking",
        "yes": "with --purge: do not ask (for scripts)",
    },
)
def remove_user(c, name, purge=False, yes=False):
    """Take NAME off userlist and the hub (server stopped); their home is kept unless --purge."""
    with user_errors():
        commands.remove_user(PATHS, os.environ, Output(), name, purge, yes)


@task(help={"yes": "do not ask (for scripts)"})
def destroy(c, yes=False):
    """Remove every Docker object of this hub, users' files included, after listing and asking."""
    with user_errors():
        commands.destroy(PATHS, os.environ, Output(), yes)


@task
def hubs(c):
    """List every hub on this host (port, path, state, users) and print one nginx server block."""
    with user_errors():
        commands.hubs(PATHS, os.environ, Output())


@task
def status(c):
    """Show each component's state, what setup would change, and who has a server running."""
    with user_errors():
        commands.status(PATHS, os.environ, Output())


@task
def check(c):
    """Check .env and userlist, listing every problem at once."""
    with user_errors():
        commands.check(PATHS, os.environ, Output())


@task(
    help={
        "name": "the user to print (default: the hub's ADMIN_USER)",
        "csv": "print username,password for the whole roster, header first, to hand out",
    },
)
def login(c, name="", csv=False):
    """Print the hub's URL, a username and password (the admin's unless --name)."""
    with user_errors():
        commands.login(PATHS, os.environ, Output(), name, csv)


@task(
    help={
        "name": "the user whose password is replaced",
        "dry_run": "print the plan and change nothing",
    },
)
def reset_password(c, name, dry_run=False):
    """Give NAME a new random password and print it."""
    with user_errors():
        commands.reset_password(PATHS, os.environ, Output(), name, dry_run=dry_run)


@task(
    help={
        "server": "print a whole site instead: HTTP to HTTPS, TLS 1.2+, HSTS, login rate limit",
    },
)
def nginx(c, server=False):
    """Print the nginx location block that routes /<HUB_NAME>/ to this hub (or a whole TLS site)."""
    with user_errors():
        commands.nginx(PATHS, os.environ, Output(), server)


@task(
    help={
        "users": "comma-separated users: back up only their homes",
        "to": "the folder to write (default: BACKUP_DIR/<HUB_NAME>-<date>-<time>)",
    },
)
def backup(c, users="", to=""):
    """Back up the running hub: database, every home and group folder, roster, settings, secrets."""
    with user_errors():
        commands.backup(PATHS, os.environ, Output(), users, to)


@task(help={"folder": "a folder written by invoke backup",
            "dry_run": "check the backup and print the plan; change nothing"})  # fmt: skip
def restore(c, folder, dry_run=False):
    """Recreate this hub from a backup (on a new server, or after invoke destroy); checks it first."""
    with user_errors():
        commands.restore(PATHS, os.environ, Output(), folder, dry_run)


@task
def archive(c):
    """Semester end: back up the whole hub, then stop and remove its containers (volumes stay)."""
    with user_errors():
        commands.archive(PATHS, os.environ, Output())


@task(
    help={
        "users": "how many temporary students log in",
        "ramp": "seconds over which their logins are spread (default 10)",
        "out": "folder for timings.json and timeline.png (default state/rehearsals/<date>)",
        "cleanup": "only remove what an interrupted rehearsal left behind",
        "prewarm": "start their servers first, as invoke prewarm does, then measure the logins",
        "minutes": "a class at work: each student runs a cell every --every seconds until then",
        "every": "seconds between a student's cells with --minutes (default 10)",
    },
)
def rehearse(c, users=0, ramp=10.0, out="", cleanup=False, prewarm=False, minutes=0.0, every=10.0):
    """Rehearse a class start: N temporary students log in, start servers and run code; then removed."""
    with user_errors():
        commands.rehearse(PATHS, os.environ, Output(), users, ramp, out, cleanup, prewarm,
                          minutes, every)  # fmt: skip


@task(
    help={
        "name": "the user whose server to restart (with --group: the group)",
        "group": "NAME is a group: restart its members' running servers",
    },
)
def restart_server(c, name, group=False):
    """Restart a stuck student's server (or a group's running ones); their files stay."""
    with user_errors():
        commands.restart_server(PATHS, os.environ, Output(), name, group)


@task(help={"host": "the server: HOST, USER@HOST or USER@HOST:PORT, as ssh reaches it"})
def add_node(c, host):
    """Check a server (engine, settings, shared storage) and join it to this server's swarm."""
    with user_errors():
        commands.add_node(PATHS, os.environ, Output(), host)


@task(help={"host": "the node: its hostname (invoke status) or the address add-node was given"})
def drain_node(c, host):
    """Start nothing new on a node; wait until its servers have stopped. Files stay."""
    with user_errors():
        commands.drain_node(PATHS, os.environ, Output(), host)


@task(help={"host": "the node: its hostname (invoke status) or the address add-node was given"})
def remove_node(c, host):
    """Drain a node and take it out of the swarm. Files stay."""
    with user_errors():
        commands.remove_node(PATHS, os.environ, Output(), host)


@task(
    help={
        "group": "the group whose servers the exam cuts off (or gives back)",
        "until": "with start: end it by itself at this time today (HH:MM, this server's clock)",
    },
)
def exam(c, action, group="", until=""):
    """exam start --group G [--until HH:MM]: G's servers reach the hub alone; exam stop gives
    them back. No restarts."""
    with user_errors():
        commands.exam(PATHS, os.environ, Output(), action, group, until)


@task(
    help={
        "group": "start the servers of this group's members",
        "users": "comma-separated users whose servers to start",
        "at": "wait until this time today (HH:MM, this server's clock), then start",
        "hold": "keep the idle culler off them this long after they are ready, e.g. 30m",
    },
)
def prewarm(c, group="", users="", at="", hold=""):
    """Start a class's servers, each with a kernel ready, before it begins (now or --at 08:50)."""
    with user_errors():
        commands.prewarm(PATHS, os.environ, Output(), group, users, at, hold)


@task(
    help={
        "source": "the material: a folder on this server, or a git repository (address or path)",
        "to": "hand out to this group's members (with --to-group-folder: into its folder)",
        "users": "comma-separated users to hand out to (default: every user who is not an admin)",
        "as": "the folder's name in their homes (default: SOURCE's own name)",
        "to_group_folder": "into group folders instead of homes (every group's, or --to GROUP's)",
        "dry_run": "print what each student would get and write nothing",
    },
)
def handout(c, source, to="", users="", as_="", to_group_folder=False, dry_run=False):
    """Hand SOURCE out into students' homes as NAME/ (again: new files arrive, theirs are kept)."""
    with user_errors():
        commands.handout(PATHS, os.environ, Output(), source, to, users, as_, to_group_folder,
                         dry_run)  # fmt: skip


@task(
    help={
        "name": "the handed-out folder (handout's --as NAME)",
        "due": "mark files changed after this as late: 'YYYY-MM-DD HH:MM' or HH:MM today",
        "groups": "collect the group folders it was handed into, one submission a group",
        "max_size": "skip (and list) files larger than this (default 100M)",
    },
)
def collect(c, name, due="", groups=False, max_size=""):
    """Copy every student's NAME/ into assignments/NAME/collected-<time>/ with CSV tables."""
    with user_errors():
        commands.collect(PATHS, os.environ, Output(), name, due, groups, max_size)


@task(
    name="return",
    help={
        "name": "the handed-out folder (handout's --as NAME)",
        "folder": "a folder on this server holding <student>/... (e.g. nbgrader's feedback)",
        "groups": "FOLDER holds <group>/...: return into the group folders",
    },
)
def return_(c, name, folder, groups=False):
    """Put FOLDER/<student>/... into each student's NAME/feedback/, to read in JupyterLab."""
    with user_errors():
        commands.return_feedback(PATHS, os.environ, Output(), name, folder, groups)


@task(
    help={
        "name": "the handed-out folder whose newest collect is graded",
        "key": "the instructor's version: nbgrader source notebooks, or a folder with grade.py",
        "timeout": "seconds a cell (or grade.py) may run (default 60)",
        "memory": "memory each sandbox may use (default 512M)",
        "cpus": "cores each sandbox may use (default 1)",
        "parallel": "sandboxes at once (default: this server's cores / --cpus)",
    },
)
def autograde(c, name, key, timeout=60, memory="", cpus=1.0, parallel=0):
    """Grade NAME's newest collect, each submission in its own sandbox: grades.csv, feedback."""
    with user_errors():
        commands.autograde(PATHS, os.environ, Output(), name, key, timeout, memory, cpus,
                           parallel)  # fmt: skip
