"""Property-based fuzzing of the proxy over raw sockets (`make test` runs a few thousand examples, `make fuzz` more)."""
