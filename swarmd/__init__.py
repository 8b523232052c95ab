"""swarmd: a pool of Docker hosts as one. One installed package:

- `swarmd.cli`: the `swarm` console script, one module per verb; it sits above the daemons.
- `swarmd.manager`, `swarmd.agent`, `swarmd.discovery`: the three daemons (top-level folders of the tree).
- `swarmd.common`: the library the daemons share; it imports no daemon.
- `swarmd.proto`: the gRPC contracts and their generated stubs.
- `swarmd.localcluster`: the development lab behind `swarm up` and the tests; no daemon imports it.
"""
