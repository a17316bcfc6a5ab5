"""Names of an observation's and an action's entries, as LeRobot datasets spell them; the policy,
the wire protocol, the robot adapters and the datasets all use these."""

STATE_KEY = "observation.state"  # float32 [state_dim]
IMAGE_PREFIX = "observation.images."  # + camera name: uint8 [H, W, 3] RGB
IMAGE_KEY = IMAGE_PREFIX + "{}"  # IMAGE_KEY.format(camera)
TASK_KEY = "task"  # the instruction string
ACTION_KEY = "action"  # float32 [action_dim]

# What followed a frame's action, as recorded; a reader derives them for demonstrations.
REWARD_KEY = "next.reward"  # float32
DONE_KEY = "next.done"  # bool: the episode's last frame
SUCCESS_KEY = "next.success"  # bool: the task's goal was reached
MC_RETURN_KEY = "mc_return"  # float32: the discounted return-to-go, computed by the reader

# LeRobot's bookkeeping columns of every frame; episodes.jsonl and tasks.jsonl use the same names.
TIMESTAMP_KEY = "timestamp"  # float32: seconds since the episode's start
FRAME_INDEX_KEY = "frame_index"  # int64: within the episode
EPISODE_INDEX_KEY = "episode_index"  # int64
INDEX_KEY = "index"  # int64: within the dataset
TASK_INDEX_KEY = "task_index"  # int64: into the dataset's task list
