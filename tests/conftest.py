"""Shared test setup: headless rendering, and one torch thread per test process (2-core CI)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
