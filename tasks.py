"""classhub's tasks. `invoke --list` lists them; the README explains each.

Thin on purpose: each task parses its arguments and calls one function of `classhub.commands`.
"""

import os
from pathlib import Path

from invoke import task

from classhub import commands
from classhub.console import Output, user_errors
from classhub.paths import Paths

PATHS = Paths.at(Path(__file__).parent)


@task(help={"dry_run": "print the plan (component, state, action) and change nothing"})
def setup(c, dry_run=False):
    """Set up this hub from .env and userlist, then print the nginx block and the admin's login."""
    with user_errors():
        commands.setup(PATHS, os.environ, Output(), dry_run=dry_run)


@task
def status(c):
    """Show each component's state and what setup would change."""
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


@task
def nginx(c):
    """Print the nginx location block that routes /<HUB_NAME>/ to this hub."""
    with user_errors():
        commands.nginx(PATHS, os.environ, Output())
