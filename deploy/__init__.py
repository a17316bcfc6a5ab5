"""Launching two-process deployments: launcher, robot adapter interface, key tools."""
