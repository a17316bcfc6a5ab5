"""Names of an observation's and an action's entries, as LeRobot datasets spell them; the policy,
the wire protocol, the robot adapters and the datasets all use these."""

STATE_KEY = "observation.state"  # float32 [state_dim]
IMAGE_PREFIX = "observation.images."  # + camera name: uint8 [H, W, 3] RGB
IMAGE_KEY = IMAGE_PREFIX + "{}"  # IMAGE_KEY.format(camera)
TASK_KEY = "task"  # the instruction string
ACTION_KEY = "action"  # float32 [action_dim]
