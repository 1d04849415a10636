"""Disk limits, the host's side: which volumes live in DISK_STORE with which size.

The engine makes, sizes, measures and deletes their folders (`runtime.Runtime`; on Docker
`runtime/single_host/disks.py`, with a helper container of the hub image).

With DISK_STORE set, each home and group folder is a btrfs subvolume in the store with a size
limit (hub/classhub_hub/diskstore.py does the btrfs part, in a throwaway container of the hub image
with only the store mounted), and its Docker volume binds that folder. Without it, homes live in
Docker's own storage and nothing limits them; setup and status say so.

Rules that hold here:
- A volume's store is read from the volume itself (its `device` option), so a volume made with
  an earlier DISK_STORE is still found, measured and deleted in the right place.
- A home made before DISK_STORE was set stays where it is, unlimited, until moved
  (docs/disk-limits.md); the plan names it.
"""

from __future__ import annotations

from . import names
from .console import human_size
from .inputs.roster import Roster
from .inputs.settings import Settings

NOT_ENFORCED = (
    "Homes have no size limit: DISK_STORE is not set, so one student can fill the disk the hub's "
    "database is on (docs/disk-limits.md)."
)
NEAR_FULL = 0.9  # a home at this share of its limit is named in the plan


def summary(settings: Settings) -> str:
    """One line on the homes' size limits, or plainly that there are none."""
    if not settings.disk_store:
        return NOT_ENFORCED
    return (
        f"Homes hold at most {human_size(settings.disk_limit)} each, group folders "
        f"{human_size(settings.group_disk_limit)} (userlist's disk= aside), in {settings.disk_store}."
    )


def wanted(settings: Settings, roster: Roster) -> dict[str, tuple[str, int]]:
    """Every home and group folder the roster needs: volume -> (kind, size limit in bytes)."""
    hub = settings.hub_name
    found = {
        names.user_volume(hub, u.name): ("user", roster.home_size(u, settings.disk_limit))
        for u in roster.users
    }
    for group in roster.groups():
        size = roster.group_size(group, settings.group_disk_limit)
        found[names.group_volume(hub, group)] = ("group", size)
    return found
