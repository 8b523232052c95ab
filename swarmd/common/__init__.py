"""The shared library of the three daemons: flags and configuration, logs, TLS and the CA,
metrics plumbing, engine errors and cluster membership. It imports no daemon."""
