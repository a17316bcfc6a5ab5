"""Simulators (or robots) in their own processes and Python environments, behind one request
protocol over ZeroMQ: the protocol (protocol.py), the server that wraps a simulator (server.py),
our side's client (client.py), and the simulators served (metaworld_sim.py)."""
