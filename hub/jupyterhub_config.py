"""The hub's configuration: read the hub file `invoke setup` rendered, apply it, then the extras.

Kept short on purpose: everything is set by `classhub_hub.config.apply_config` (tested on the
host). Files in the host's hub/jupyterhub_config.d/*.py are loaded last, in name order, as an
escape hatch for settings classhub does not cover.
"""

import glob
import os

from classhub import hubfile
from classhub_hub.config import apply_config, read_secrets

c = get_config()  # noqa: F821 (JupyterHub provides it)
hub = hubfile.load(hubfile.HUB_FILE_IN_HUB)
if hub.get("db") == "postgres" and os.path.exists(f"{hubfile.DATA_IN_HUB}/{hubfile.SQLITE_FILE}"):
    # The sqlite file is renamed once its rows are in PostgreSQL: still here, the copy was
    # interrupted, and PostgreSQL may hold only part of the hub's data. Starting on it would hide
    # the rest and write beside it.
    raise SystemExit(
        f"classhub: HUB_DB=postgres, but the hub's database is still {hubfile.SQLITE_FILE} (its "
        "copy into PostgreSQL did not finish): run invoke setup, which copies it again"
    )
apply_config(c, hub, read_secrets())
# The proxy runs as the hub's child in this container, so none runs yet: a pid file left by a hub
# that was killed names some other process now, and JupyterHub, taking it for its proxy, did not
# start one and exited; Docker's restarts then backed off for minutes.
pid_file = os.path.join(hubfile.DATA_IN_HUB, "jupyterhub-proxy.pid")
if os.path.exists(pid_file):
    print(f"classhub: removing {pid_file}, left by a hub that did not stop cleanly", flush=True)
    os.remove(pid_file)
c.ConfigurableHTTPProxy.pid_file = pid_file
print(
    f"classhub: hub {hub.get('hub_name')!r}, {len(hub.get('users'))} users, "
    f"{len(hub.get('groups'))} groups, image {hub.get('notebook_image')}",
    flush=True,
)
for extra in sorted(glob.glob(os.path.join(hubfile.CONFIG_D_IN_HUB, "*.py"))):
    print(f"classhub: loading {extra}", flush=True)
    load_subconfig(extra)  # noqa: F821
