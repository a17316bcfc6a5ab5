"""The two-process runtime: wire protocol, ZeroMQ transport, the System-1 and System-2 nodes."""
