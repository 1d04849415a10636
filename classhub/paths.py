"""Where classhub's files live in one checkout (one checkout is one hub).

`Paths` is a plain value made from the checkout's root; every other module is given one instead of
looking at the working directory, so tests point it at a temporary folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Paths:
        return cls(Path(root).resolve())

    @property
    def env_file(self) -> Path:
        """The administrator's settings (made from `.env.example` by setup when missing)."""
        return self.root / ".env"

    @property
    def env_example(self) -> Path:
        return self.root / ".env.example"

    @property
    def userlist(self) -> Path:
        """The roster: one user a line."""
        return self.root / "userlist"

    @property
    def secrets_dir(self) -> Path:
        """Generated secrets and plaintext passwords: host only, 0700, files 0600."""
        return self.root / "secrets"

    @property
    def credentials_file(self) -> Path:
        return self.secrets_dir / "credentials.json"

    @property
    def state_dir(self) -> Path:
        """Files rendered for the hub (no plaintext secrets, but password hashes: 0700)."""
        return self.root / "state"

    @property
    def hub_file(self) -> Path:
        """The one file the hub reads: users, hashes, groups, limits, images."""
        return self.state_dir / "hub.json"

    @property
    def known_hosts(self) -> Path:
        """The swarm's nodes' SSH host keys, as first seen by add-node."""
        return self.state_dir / "known_hosts"

    @property
    def nginx_dir(self) -> Path:
        return self.root / "nginx"

    def show(self, path: Path) -> str:
        """A path as the administrator should read it: relative to the checkout when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
