"""`hume serve system2 | system1 | openpi`: run one node of a deployment (on this host).

The same deploy config as `hume deploy` (configs/deploy/*.yaml); endpoints default to
tcp://127.0.0.1:5555 (observations) and :5556 (chunks). To run the nodes on two hosts, bind
System 2 on a reachable address and point System 1 at it; that needs CURVE keys (`hume keys`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hume.cli.dispatch import subcommands
from hume.config import ConfigError, check_checkpoint, parse_config

NODES = {
    "system2": "the System-2 node: newest observation in, best-of-N chunk out",
    "system1": "the System-1 node: the control loop around a robot adapter (robot.kind)",
    "openpi": "a HumePolicy behind the openpi websocket protocol (for openpi-client)",
}


def main(argv: Sequence[str]) -> int:
    from deploy.parent_death import die_with_parent
    from hume.runtime.config import DeployConfig
    from hume.runtime.transport import EndpointError, check_endpoint, check_keys_dir

    parser, _ = subcommands(
        "hume serve", "node", NODES, epilog="Options: `hume serve <node> --help` (those of `hume deploy`)."
    )
    die_with_parent()  # started by `hume deploy`: stop with it
    args, rest = parser.parse_known_args(argv)
    node = args.name
    cfg = parse_config(DeployConfig, rest, prog=f"hume serve {node}")
    output = Path(cfg.output)
    try:
        if node == "openpi":
            from deploy.robots.base import declared_envelope
            from hume.runtime import openpi_server
            from hume.runtime.envelope import resolve_declared

            limits = resolve_declared(cfg.robot.envelope, declared_envelope(cfg.robot), cfg.robot.kind)
            return openpi_server.serve(cfg, limits)
        check_keys_dir(cfg.transport.keys_dir)  # refuse bad endpoints and keys before loading any model
        for endpoint in cfg.transport.endpoints():
            check_endpoint(endpoint, secure=bool(cfg.transport.keys_dir))
        if node == "system2":
            from hume.runtime import system2_node

            return system2_node.serve(cfg, output)
        from deploy.robots.driver import RobotLink
        from hume.runtime import system1_node
        from hume.runtime.envelope import resolve

        check_checkpoint(cfg.checkpoint)
        # The robot lives in its driver's process, which holds it when System 1 is silent or gone.
        robot = RobotLink(cfg.robot, seed=cfg.seed, output=output)
        try:
            resolve(cfg.robot.envelope, robot, cfg.robot.kind)  # no envelope: fail before loading a model
            return system1_node.serve(cfg, output, robot)
        finally:
            robot.close()
    except EndpointError as e:
        raise ConfigError(str(e)) from None
