"""classhub: one Linux server with Docker becomes a multi-user JupyterHub.

The package holds all of classhub's logic; `tasks.py` and `noxfile.py` only call into it.
Nothing here reads the environment or the working directory at import time: every function is
given a `Paths` and, where it matters, the environment to read.
"""
