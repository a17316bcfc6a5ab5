"""`hume serve openpi --openpi.api_key`: a connection without the key, or with another, is refused
before any model code runs; the key is compared in constant time."""

import threading

import msgpack
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from hume.runtime import openpi_server
from hume.runtime.envelope import Limits


class NoModel:
    """Connections reset the policy; nothing else is reached here."""

    resets = 0

    def reset(self):
        self.resets += 1


@pytest.fixture
def server():
    policy = NoModel()
    arm = np.ones(6, np.float32)
    limits = Limits(low=-arm, high=arm, max_delta=arm, gripper=(-1.0, 1.0))
    srv = openpi_server.OpenpiServer(policy, "tiny@0", "127.0.0.1", 0, limits, api_key="the-right-key")
    stop = threading.Event()
    thread = threading.Thread(target=srv.run_until, args=(stop,))
    thread.start()
    yield srv, policy
    stop.set()
    thread.join(10)


@pytest.mark.parametrize("header", [None, "Api-Key the-wrong-key", "Api-Key the-right-ke", "the-right-key"])
def test_a_missing_or_wrong_key_is_refused(server, header):
    srv, policy = server
    headers = {} if header is None else {"Authorization": header}
    with pytest.raises(InvalidStatus) as e:
        connect(f"ws://127.0.0.1:{srv.port}", additional_headers=headers, open_timeout=10)
    assert e.value.response.status_code == 401 and policy.resets == 0


def test_the_right_key_is_let_in_and_compared_in_constant_time(server, monkeypatch):
    srv, policy = server
    compared = []

    def compare_digest(a, b):
        compared.append((a, b))
        return hmac_compare(a, b)

    hmac_compare = openpi_server.hmac.compare_digest
    monkeypatch.setattr(openpi_server.hmac, "compare_digest", compare_digest)
    headers = {"Authorization": "Api-Key the-right-key"}
    with connect(f"ws://127.0.0.1:{srv.port}", additional_headers=headers, open_timeout=10) as ws:
        assert msgpack.unpackb(ws.recv(timeout=10))["model_id"] == "tiny@0"
    assert compared == [(b"Api-Key the-right-key", b"Api-Key the-right-key")]
    assert policy.resets == 1
