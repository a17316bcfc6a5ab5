"""Shared test setup: headless rendering, and one torch thread per test process (2-core CI)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# Read by torch when it starts: small CPU ops are slower with two threads than with one as soon
# as anything else runs on the second core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
