"""A System-1 client for the fleet test, from raw sockets: sends observations of its own episode
every 50 ms and records every chunk and error it receives as a JSON line (its own and others').
Its session is the hash of SECRET (runtime_support.session_of(NAME) for SECRET secret_of(NAME)).

    python fleet_client.py OBS_ENDPOINT CHUNK_ENDPOINT SECRET EPISODE OUT_FILE
"""

import json
import signal
import sys
import time

import numpy as np
import zmq

from hume.runtime import protocol


def main(obs_endpoint: str, chunk_endpoint: str, secret: str, episode: int, out: str) -> None:
    session = protocol.session_of(secret)
    ctx = zmq.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    pub.connect(obs_endpoint)
    sub.connect(chunk_endpoint)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    arrays = {
        "observation.images.agentview": np.zeros((64, 64, 3), np.uint8),
        "observation.images.wrist": np.zeros((64, 64, 3), np.uint8),
        "observation.state": np.full(8, episode / 100, np.float32),
    }
    tick = 0
    with open(out, "a", buffering=1) as f:
        while not stop:
            fields = {"episode": episode, "step": tick, "tick": tick, "task": "pick up the black bowl"}
            fields[protocol.SECRET_KEY] = secret
            pub.send_multipart(protocol.encode(protocol.OBSERVATION, session, tick, fields, arrays))
            deadline = time.monotonic() + 0.05
            while (left := deadline - time.monotonic()) > 0 and sub.poll(left * 1e3):
                msg = protocol.decode(sub.recv_multipart())
                if msg.type in (protocol.CHUNK, protocol.ERROR):
                    f.write(json.dumps({"type": msg.type, "now": tick, **msg.fields}) + "\n")
            tick += 1
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main(*sys.argv[1:4], int(sys.argv[4]), sys.argv[5])
