"""Simulation: the LIBERO adapter, scripted experts and the evaluator."""
