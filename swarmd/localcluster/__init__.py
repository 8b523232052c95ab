"""Real local daemons for development and tests: etcd, dockerd engines, a registry.

Used by the test lab (`tests/conftest.py`) and by `swarm up`. Everything here starts real
processes, remembers their pids, and stops exactly those pids.
"""
