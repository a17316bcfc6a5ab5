"""`hume bench transport`: ours vs openpi-client vs bare pyzmq on real sockets; JSON shape only."""

import pytest
from cli_support import hume, last_json


@pytest.mark.slow
def test_smoke_run_reports_all_three_transports():
    endpoint = "tcp"
    result = last_json(hume("bench", "transport", "--smoke", "--json", f"--endpoint={endpoint}"))
    assert result["benchmark"] == "transport" and result["endpoint"] == endpoint
    assert result["round_trips"] == 50
    # Two 224² RGB images are on the wire, and a [16, 7] float32 chunk comes back.
    assert result["observation_bytes"] > 2 * 224 * 224 * 3
    assert 16 * 7 * 4 < result["chunk_bytes"] < 4096
    for name in ("ours", "openpi", "floor"):
        assert 0 < result[name]["p50_ms"] <= result[name]["p99_ms"]


def test_payload_is_what_the_protocol_accepts():
    from hume.bench.transport import _wire_bytes, payload
    from hume.runtime import protocol

    obs_frames, chunk_frames = _wire_bytes(payload(224))
    obs, chunk = protocol.decode(obs_frames), protocol.decode(chunk_frames)
    assert obs.arrays["observation.images.agentview"].shape == (224, 224, 3)
    assert obs.arrays["observation.images.wrist"].shape == (224, 224, 3)
    assert chunk.arrays["actions"].shape == (16, 7)
    # Three 480x640 cameras, as the realistic payload of docs/benchmarks.md.
    wide = protocol.decode(_wire_bytes(payload(480, cameras=3, image_width=640))[0])
    assert sorted(wide.arrays) == [
        "observation.images.agentview", "observation.images.camera2", "observation.images.wrist",
        "observation.state",
    ]  # fmt: skip
    assert wide.arrays["observation.images.camera2"].shape == (480, 640, 3)


def test_endpoints_stay_on_this_host(tmp_path):
    from hume.bench.transport import _endpoints
    from hume.runtime.transport import is_loopback

    for kind in ("tcp", "ipc"):
        obs, chunks = _endpoints(kind, str(tmp_path), "ours")
        assert obs != chunks and obs.startswith(f"{kind}://")
        assert is_loopback(obs) and is_loopback(chunks)


def test_bad_endpoint_is_a_config_error():
    r = hume("bench", "transport", "--endpoint=udp")
    assert r.returncode == 2 and "endpoint" in r.stderr
