"""Robot adapters, the one home for them: the interface the System-1 node drives and how a config
picks an adapter (base.py), the kinematic robot (kinematic.py), the LIBERO simulator (libero.py)."""

from deploy.robots.base import Robot, make_robot

__all__ = ["Robot", "make_robot"]
