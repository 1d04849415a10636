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
apply_config(c, hub, read_secrets())
print(
    f"classhub: hub {hub.get('hub_name')!r}, {len(hub.get('users'))} users, "
    f"{len(hub.get('groups'))} groups, image {hub.get('notebook_image')}",
    flush=True,
)
for extra in sorted(glob.glob(os.path.join(hubfile.CONFIG_D_IN_HUB, "*.py"))):
    print(f"classhub: loading {extra}", flush=True)
    load_subconfig(extra)  # noqa: F821
