"""The hub side of classhub: what runs inside the hub container.

- `config.apply_config` sets JupyterHub's configuration from the rendered hub file.
- `auth.RosterAuthenticator` checks logins against the roster's bcrypt hashes.
- `spawner.ClasshubSpawner` is DockerSpawner tuned for a class starting at once.

Rules: this package imports only `classhub.hubfile` from the host package (the image copies that
one module) plus what the hub image installs (JupyterHub, DockerSpawner, bcrypt).
"""
