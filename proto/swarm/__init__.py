"""Package `swarm` of the protos."""
