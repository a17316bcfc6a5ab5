"""Checkpoints by Hugging Face Hub model id and push_to_hub, with the Hub replaced by a stand-in
(nothing is downloaded or uploaded)."""

import shutil

import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError

from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy, hub
from hume.policy.hume_policy import CHECKPOINT_FILES


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(1)
    return HumePolicy.from_config(HumeConfig())


def same_weights(a: HumePolicy, b: HumePolicy) -> bool:
    theirs = b.state_dict()
    return all(torch.equal(v, theirs[k]) for k, v in a.state_dict().items())


def test_a_hub_id_loads_its_checkpoint_files_like_a_folder(policy, tmp_path, monkeypatch):
    policy.save_pretrained(tmp_path / "snapshot")
    asked = {}

    def snapshot_download(repo_id, revision=None, allow_patterns=None):
        asked.update(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns)
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    loaded = HumePolicy.from_pretrained("org/hume-libero", revision="v1", num_candidates=3)
    assert asked == {"repo_id": "org/hume-libero", "revision": "v1", "allow_patterns": CHECKPOINT_FILES}
    assert loaded.config.num_candidates == 3 and same_weights(policy, loaded)


def test_missing_folder_or_model_says_which(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found: .*nowhere"):
        HumePolicy.from_pretrained(tmp_path / "nowhere")  # no Hub id looks like this: never asked

    def offline(repo_id, **kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub and nothing is cached")

    monkeypatch.setattr(hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match="org/missing is no directory here.*nothing is cached"):
        HumePolicy.from_pretrained("org/missing")


def test_push_to_hub_uploads_the_checkpoint_folder(policy, tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message):
            shutil.copytree(folder_path, tmp_path / "uploaded")
            return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    url = policy.push_to_hub("org/mine", private=True, token="t")
    assert url == "https://huggingface.co/org/mine/commit/abc"
    assert calls == [("token", "t"), ("create", "org/mine", True, True)]
    uploaded = tmp_path / "uploaded"
    files = {p.name for p in uploaded.iterdir()}
    assert files == {"config.json", "model.safetensors", "stats.json", "tokenizer"}
    assert same_weights(policy, HumePolicy.from_pretrained(uploaded))
