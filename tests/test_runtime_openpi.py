"""`hume serve openpi` as a real process behind the unmodified openpi-client: its actions pass the
robot's action envelope (finite, bounds, rate) whatever the policy answers; an observation with a
non-finite number gets an error, not actions; the metadata's action width is the robot's."""

import numpy as np
import pytest
import yaml
from plugin_policy import ReachPolicy, pattern, write_checkpoint
from runtime_support import Proc

from hume.runtime.envelope import CLAMPED, HELD, NONFINITE, RATE_LIMITED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager:DeprecationWarning"),
]


def _serve(tmp_path, policy: str, action_dim: int, state_dim: int, robot: dict) -> tuple[Proc, int]:
    ckpt = write_checkpoint(tmp_path / "ckpt", action_dim, state_dim)
    config = tmp_path / "openpi.yaml"
    config.write_text(yaml.safe_dump({"robot": robot}))
    args = ["serve", "openpi", "--config", str(config), f"--checkpoint={ckpt}", "--policy.type=import",
            f"--policy.path=plugin_policy:{policy}", "--openpi.port=0"]  # fmt: skip
    server = Proc(args, tmp_path / "openpi.log")
    try:
        return server, int(server.wait_for(r"ws://127\.0\.0\.1:(\d+)", 120).group(1))
    except BaseException:
        server.stop()
        raise


def _obs(state: np.ndarray) -> dict:
    return {
        "observation/image": np.zeros((32, 32, 3), np.uint8),
        "observation/wrist_image": np.zeros((32, 32, 3), np.uint8),
        "observation/state": state,
        "prompt": "reach",
    }


def test_wild_answers_leave_inside_the_envelope_and_nan_observations_get_an_error(tmp_path):
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    # The kinematic robot's envelope: ±1 per dim, at most 0.5 change per tick, gripper ±1.
    server, port = _serve(tmp_path, "WildPolicy", 7, 8, {"kind": "kinematic"})
    try:
        client = WebsocketClientPolicy("127.0.0.1", port)
        meta = client.get_server_metadata()
        assert meta["action_dim"] == 7 and meta["envelope"]["max_delta"] == [0.5] * 6
        out = client.infer(_obs(np.zeros(8, np.float32)))
        actions = out["actions"]
        # WildPolicy asked for ±5 flipping every step and a NaN in the second action.
        assert actions.shape == (4, 7) and np.isfinite(actions).all()
        assert (np.abs(actions) <= 1.0).all()
        np.testing.assert_array_equal(actions[1], [0.0] * 6 + [1.0])  # the NaN: held
        # Each action within 0.5 of the one before, but stopping (the hold) is always allowed.
        moving = (actions[1:, :6] != 0).any(axis=1)
        assert (np.abs(np.diff(actions[:, :6], axis=0))[moving] <= 0.5 + 1e-6).all()
        np.testing.assert_allclose(actions[:, 0], [1.0, 0.0, 0.5, 0.0])
        assert out["envelope"] == CLAMPED | RATE_LIMITED | HELD | NONFINITE
        # A NaN in the state: an error reply naming it, no actions.
        with pytest.raises(RuntimeError, match="non-finite"):
            client.infer(_obs(np.array([np.nan] + [0.0] * 7, np.float32)))
        again = WebsocketClientPolicy("127.0.0.1", port).infer(_obs(np.zeros(8, np.float32)))
        np.testing.assert_array_equal(again["actions"], actions)  # each connection starts afresh
    finally:
        assert server.stop() == 0


def test_the_metadata_and_the_actions_have_the_robots_width(tmp_path):
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    robot = {"kind": "kinematic", "options": {"arm_dof": 5}}  # 5 deltas and a gripper: 6 dims
    server, port = _serve(tmp_path, "ReachPolicy", 6, 7, robot)
    try:
        client = WebsocketClientPolicy("127.0.0.1", port)
        assert client.get_server_metadata()["action_dim"] == 6
        out = client.infer(_obs(np.zeros(7, np.float32)))
        horizon = ReachPolicy.from_pretrained(tmp_path / "ckpt").config.s1_horizon
        np.testing.assert_array_equal(out["actions"], np.tile(pattern(6), (horizon, 1)))
        assert out["envelope"] == 0
    finally:
        assert server.stop() == 0
