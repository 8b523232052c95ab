"""The gRPC contracts between the daemons: `.proto` sources and, once built, their stubs."""
