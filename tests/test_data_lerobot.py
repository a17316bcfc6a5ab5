"""LeRobot dataset I/O: our v2.1 writer read back, a hand-built v3.0 dataset, a public-style
LIBERO dataset with images inside the parquet files and other column names."""

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hume.data import LeRobotDataset, LeRobotWriter
from hume.data.format import DatasetFormatError, libero_features
from hume.data.stats import aggregate_stats, feature_stats

FPS = 20
SIZE = 32


def _frame_images(values):
    """Frames of constant grey levels `values`: any mix-up of frames shows in their mean."""
    return np.repeat(np.asarray(values, dtype=np.uint8)[:, None, None, None], SIZE * SIZE * 3).reshape(
        len(values), SIZE, SIZE, 3
    )


def _episode(length, success, seed):
    rng = np.random.default_rng(seed)
    done = np.zeros(length, dtype=bool)
    done[-1] = True
    return {
        "observation.images.agentview": _frame_images(10 * np.arange(length) + 5),
        "observation.images.wrist": _frame_images(250 - 10 * np.arange(length)),
        "observation.state": rng.normal(size=(length, 8)).astype(np.float32),
        "action": rng.uniform(-1, 1, size=(length, 7)).astype(np.float32),
        "next.reward": (done & success).astype(np.float32),
        "next.done": done,
        "next.success": done & success,
    }


@pytest.fixture
def v21(tmp_path):
    root = tmp_path / "ds"
    writer = LeRobotWriter(root, FPS, libero_features(SIZE, FPS, ("agentview", "wrist")))
    episodes = {0: _episode(6, True, 0), 1: _episode(4, False, 1), 2: _episode(5, True, 2)}
    # Out of order, as parallel workers finish: finalize must still number frames 0..N-1.
    for ep in (2, 0, 1):
        writer.add_episode(
            ep,
            "put the soup in the basket" if ep != 1 else "open the drawer",
            episodes[ep],
            success=bool(episodes[ep]["next.success"][-1]),
        )
    writer.finalize()
    return root, episodes


def test_v21_layout_and_metadata(v21):
    root, _ = v21
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1"
    assert info["total_episodes"] == 3 and info["total_frames"] == 15 and info["total_tasks"] == 2
    assert info["total_videos"] == 6 and info["splits"] == {"train": "0:3"}
    for ep in range(3):
        assert (root / f"data/chunk-000/episode_{ep:06d}.parquet").is_file()
        for cam in ("agentview", "wrist"):
            assert (root / f"videos/chunk-000/observation.images.{cam}/episode_{ep:06d}.mp4").is_file()
    rows = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
    assert [r["episode_index"] for r in rows] == [0, 1, 2]
    assert [r["length"] for r in rows] == [6, 4, 5]
    assert [r["success"] for r in rows] == [True, False, True]
    tasks = [json.loads(line) for line in (root / "meta/tasks.jsonl").read_text().splitlines()]
    assert tasks == [
        {"task_index": 0, "task": "put the soup in the basket"},
        {"task_index": 1, "task": "open the drawer"},
    ]
    stats_rows = [json.loads(line) for line in (root / "meta/episodes_stats.jsonl").read_text().splitlines()]
    assert stats_rows[1]["stats"]["action"]["count"] == [4]
    assert np.asarray(stats_rows[0]["stats"]["observation.images.agentview"]["mean"]).shape == (3, 1, 1)
    table = pq.read_table(root / "data/chunk-000/episode_000002.parquet")
    assert table.column("index").to_pylist() == list(range(10, 15))
    assert table.schema.field("observation.state").type == pa.list_(pa.float32(), 8)


def test_v21_frames_read_back(v21):
    root, episodes = v21
    ds = LeRobotDataset(root, gamma=0.5)
    assert len(ds) == 15 and ds.num_episodes == 3
    assert ds.camera_keys == ["observation.images.agentview", "observation.images.wrist"]
    item = ds[7]  # episode 1, frame 1
    assert item["episode_index"] == 1 and item["frame_index"] == 1 and item["index"] == 7
    assert item["task"] == "open the drawer" and item["task_index"] == 1
    assert item["timestamp"] == pytest.approx(1 / FPS)
    assert item["observation.images.agentview"].shape == (SIZE, SIZE, 3)
    assert item["observation.images.agentview"].dtype == np.uint8
    # Lossy video, but the right frame: grey 15 in front, 240 at the wrist.
    assert abs(item["observation.images.agentview"].mean() - 15) < 3
    assert abs(item["observation.images.wrist"].mean() - 240) < 3
    np.testing.assert_array_equal(item["observation.state"], episodes[1]["observation.state"][1])
    np.testing.assert_array_equal(item["action"], episodes[1]["action"][1])
    assert item["observation.state"].dtype == np.float32 and item["action"].shape == (7,)
    assert item["next.done"].dtype == bool and not item["next.done"]
    # Returns: success episodes end in gamma^k, the failure is zero throughout.
    np.testing.assert_allclose(
        ds.columns["mc_return"][ds.episode_range(0)], [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1]
    )
    np.testing.assert_array_equal(ds.columns["mc_return"][ds.episode_range(1)], np.zeros(4))
    last = ds[14]
    assert (
        last["next.done"] and last["next.success"] and last["next.reward"] == 1.0 and last["mc_return"] == 1.0
    )


def test_v21_stats_match_the_frames(v21):
    root, episodes = v21
    stats = LeRobotDataset(root).stats
    actions = np.concatenate([episodes[e]["action"] for e in range(3)])
    np.testing.assert_allclose(stats["action"]["mean"], actions.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["action"]["std"], actions.std(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats["action"]["min"], actions.min(0), rtol=1e-6)
    assert stats["action"]["count"].tolist() == [15]


def test_aggregated_stats_equal_stats_of_the_union():
    rng = np.random.default_rng(3)
    parts = [rng.normal(i, i + 1, size=(n, 4)) for i, n in enumerate((5, 17, 3))]
    agg = aggregate_stats([{"x": feature_stats(p)} for p in parts])["x"]
    whole = np.concatenate(parts)
    np.testing.assert_allclose(agg["mean"], whole.mean(0))
    np.testing.assert_allclose(agg["std"], whole.std(0))
    np.testing.assert_allclose(agg["max"], whole.max(0))


def test_writer_reopens_to_resume_and_refuses_other_settings(v21, tmp_path):
    root, _ = v21
    writer = LeRobotWriter(root, FPS, libero_features(SIZE, FPS, ("agentview", "wrist")))
    assert writer.has_episode(2) and not writer.has_episode(3)
    assert writer.task_index("open the drawer") == 1
    writer.add_episode(3, "open the drawer", _episode(3, False, 4), success=False)
    writer.finalize()
    assert len(LeRobotDataset(root)) == 18
    with pytest.raises(DatasetFormatError, match="other features or fps"):
        LeRobotWriter(root, 10, libero_features(SIZE, 10, ("agentview",)))
    with pytest.raises(DatasetFormatError, match="info.json"):
        LeRobotDataset(tmp_path / "nothing")


def test_a_crash_between_an_episodes_two_records_redoes_that_episode(tmp_path, monkeypatch):
    """The process dies after the first of an episode's two metadata lines: the resumed writer
    records that episode again and the dataset finalizes (never an episode without its stats)."""
    from hume.data import format as fmt

    features = libero_features(SIZE, FPS, ("agentview", "wrist"))
    writer = LeRobotWriter(tmp_path / "ds", FPS, features)
    writer.add_episode(0, "open the drawer", _episode(5, True, 0), success=True)
    append, calls = fmt.append_jsonl, []

    def dies_on_the_second_line(path, row):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        append(path, row)

    monkeypatch.setattr(fmt, "append_jsonl", dies_on_the_second_line)
    with pytest.raises(KeyboardInterrupt):
        writer.add_episode(1, "open the drawer", _episode(4, False, 1), success=False)
    monkeypatch.setattr(fmt, "append_jsonl", append)
    resumed = LeRobotWriter(tmp_path / "ds", FPS, features)
    assert resumed.has_episode(0) and not resumed.has_episode(1)
    resumed.add_episode(1, "open the drawer", _episode(4, False, 2), success=False)
    resumed.finalize()
    assert len(LeRobotDataset(tmp_path / "ds")) == 9


def _encode_av1(path, frames):
    """AV1, as LeRobot v3.0 datasets publish their videos."""
    import imageio_ffmpeg

    path.parent.mkdir(parents=True)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (SIZE, SIZE),
        fps=FPS,
        codec="libsvtav1",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,
        output_params=["-g", "2", "-crf", "20"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames:
        writer.send(frame)
    writer.close()


def _write_v30(root, lengths):
    """A LeRobot v3.0 dataset as published: frames of all episodes in one parquet file, one mp4
    per camera holding every episode back to back, episode metadata in meta/episodes/."""
    n = sum(lengths)
    starts = np.cumsum([0, *lengths[:-1]])
    episode_index = np.concatenate([np.full(k, e) for e, k in enumerate(lengths)])
    frame_index = np.concatenate([np.arange(k) for k in lengths])
    state = np.arange(n * 8, dtype=np.float32).reshape(n, 8)
    action = np.arange(n * 7, dtype=np.float32).reshape(n, 7) / 100
    data = pa.table(
        {
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 8),
            "action": pa.ListArray.from_arrays(
                pa.array(np.arange(0, n * 7 + 1, 7, dtype=np.int32)), pa.array(action.ravel())
            ),
            "timestamp": pa.array((frame_index / FPS).astype(np.float32)),
            "frame_index": pa.array(frame_index.astype(np.int64)),
            "episode_index": pa.array(episode_index.astype(np.int64)),
            "index": pa.array(np.arange(n, dtype=np.int64)),
            "task_index": pa.array(episode_index.astype(np.int64) % 2),
        }
    )
    (root / "data/chunk-000").mkdir(parents=True)
    pq.write_table(data, root / "data/chunk-000/file-000.parquet")
    key = "observation.images.image"
    _encode_av1(root / f"videos/{key}/chunk-000/file-000.mp4", _frame_images(5 * np.arange(n) + 10))
    episodes = pa.table(
        {
            "episode_index": pa.array(np.arange(len(lengths), dtype=np.int64)),
            "tasks": pa.array([["task a"] if e % 2 == 0 else ["task b"] for e in range(len(lengths))]),
            "length": pa.array(np.asarray(lengths, dtype=np.int64)),
            "data/chunk_index": pa.array(np.zeros(len(lengths), dtype=np.int64)),
            "data/file_index": pa.array(np.zeros(len(lengths), dtype=np.int64)),
            "dataset_from_index": pa.array(starts.astype(np.int64)),
            "dataset_to_index": pa.array((starts + lengths).astype(np.int64)),
            f"videos/{key}/chunk_index": pa.array(np.zeros(len(lengths), dtype=np.int64)),
            f"videos/{key}/file_index": pa.array(np.zeros(len(lengths), dtype=np.int64)),
            f"videos/{key}/from_timestamp": pa.array(starts / FPS),
            f"videos/{key}/to_timestamp": pa.array((starts + lengths) / FPS),
            "meta/episodes/chunk_index": pa.array(np.zeros(len(lengths), dtype=np.int64)),
            "meta/episodes/file_index": pa.array(np.zeros(len(lengths), dtype=np.int64)),
            "stats/action/mean": pa.array([[0.0] * 7] * len(lengths)),
        }
    )
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    pq.write_table(episodes, root / "meta/episodes/chunk-000/file-000.parquet")
    # pandas writes the task strings as the frame's unnamed index.
    pq.write_table(
        pa.table(
            {"task_index": pa.array([0, 1], type=pa.int64()), "__index_level_0__": ["task a", "task b"]}
        ),
        root / "meta/tasks.parquet",
    )
    features = {
        key: {"dtype": "video", "shape": [SIZE, SIZE, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [8], "names": None},
        "action": {"dtype": "float32", "shape": [7], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    }
    info = {
        "codebase_version": "v3.0",
        "robot_type": "panda",
        "total_episodes": len(lengths),
        "total_frames": n,
        "total_tasks": 2,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": FPS,
        "splits": {"train": f"0:{len(lengths)}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features,
    }
    (root / "meta/info.json").write_text(json.dumps(info))
    return state, action


def test_v30_dataset_is_read(tmp_path):
    lengths = [7, 5, 9]
    state, action = _write_v30(tmp_path, lengths)
    ds = LeRobotDataset(tmp_path, gamma=0.9)
    assert ds.version == "v3.0" and len(ds) == 21 and ds.num_episodes == 3
    assert ds.tasks == ["task a", "task b"]
    assert ds.camera_keys == ["observation.images.agentview"]
    np.testing.assert_array_equal(ds.columns["observation.state"], state)
    np.testing.assert_allclose(ds.columns["action"], action)
    for i in (0, 6, 7, 8, 12, 20):  # first/last frames of episodes: video seeking lands right
        item = ds[i]
        assert abs(item["observation.images.agentview"].mean() - (5 * i + 10)) < 3, i
    item = ds[13]
    assert item["episode_index"] == 2 and item["frame_index"] == 1 and item["task"] == "task a"
    # Demonstrations without reward columns count as successes at their last frame.
    assert ds.columns["next.done"].sum() == 3 and ds.columns["next.success"][20]
    np.testing.assert_allclose(
        ds.columns["mc_return"][ds.episode_range(1)], 0.9 ** np.arange(4, -1, -1), rtol=1e-6
    )


def test_public_libero_style_dataset_with_images_in_parquet(tmp_path):
    """Like physical-intelligence/libero: v2.0, PNG images inside the parquet, short key names."""
    n = 4

    def png(level):
        buf = io.BytesIO()
        Image.fromarray(np.full((SIZE, SIZE, 3), level, dtype=np.uint8)).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    table = pa.table(
        {
            "image": [png(10 * i) for i in range(n)],
            "wrist_image": [png(200 + i) for i in range(n)],
            "state": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(n * 8, dtype=np.float32)), 8),
            "actions": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(n * 7, dtype=np.float32)), 7),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / 10),
            "frame_index": pa.array(np.arange(n, dtype=np.int64)),
            "episode_index": pa.array(np.zeros(n, dtype=np.int64)),
            "index": pa.array(np.arange(n, dtype=np.int64)),
            "task_index": pa.array(np.zeros(n, dtype=np.int64)),
        }
    )
    (tmp_path / "data/chunk-000").mkdir(parents=True)
    pq.write_table(table, tmp_path / "data/chunk-000/episode_000000.parquet")
    image = {"dtype": "image", "shape": [SIZE, SIZE, 3], "names": ["height", "width", "channel"]}
    features = {
        "image": image,
        "wrist_image": image,
        "state": {"dtype": "float32", "shape": [8]},
        "actions": {"dtype": "float32", "shape": [7]},
    }
    for col in ("timestamp",):
        features[col] = {"dtype": "float32", "shape": [1]}
    for col in ("frame_index", "episode_index", "index", "task_index"):
        features[col] = {"dtype": "int64", "shape": [1]}
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text(
        json.dumps(
            {
                "codebase_version": "v2.0",
                "fps": 10,
                "chunks_size": 1000,
                "features": features,
                "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
                "video_path": None,
            }
        )
    )
    (tmp_path / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "pick the bowl"}) + "\n")
    (tmp_path / "meta/episodes.jsonl").write_text(
        json.dumps({"episode_index": 0, "tasks": ["pick the bowl"], "length": n}) + "\n"
    )
    ds = LeRobotDataset(tmp_path)
    item = ds[2]
    assert set(ds.camera_keys) == {"observation.images.agentview", "observation.images.wrist"}
    assert item["observation.images.agentview"].shape == (SIZE, SIZE, 3)
    assert (
        item["observation.images.agentview"][0, 0, 0] == 20
        and item["observation.images.wrist"][0, 0, 0] == 202
    )
    assert item["observation.state"].shape == (8,) and item["action"].shape == (7,)
    assert item["task"] == "pick the bowl"
