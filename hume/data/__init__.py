"""LeRobot dataset I/O (write v2.1, read v2.x and v3.0), Monte-Carlo returns, statistics."""

from hume.data.reader import LeRobotDataset
from hume.data.returns import discounted_returns, episode_returns, sparse_rewards
from hume.data.writer import LeRobotWriter

__all__ = ["LeRobotDataset", "LeRobotWriter", "discounted_returns", "episode_returns", "sparse_rewards"]
