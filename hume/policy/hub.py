"""Checkpoint folders on the Hugging Face Hub: a model id loads like a local folder, and a policy can
be pushed as a model repository. Only the folder's own files travel (config.json, model.safetensors,
stats.json, tokenizer/); what they must hold is checked by the loader, as for a local folder.

We call huggingface_hub directly rather than through its ModelHubMixin: the mixin parses config.json
before any hook of ours (a bad file would fail without naming it), has no place for the merged
LoRA weights `save_pretrained(state_dict=...)` writes, and adds a README.md to every folder.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id

log = logging.getLogger(__name__)


def resolve_checkpoint(path: str | Path, files: list[str], revision: str | None = None) -> Path:
    """A local folder as it is; otherwise a Hub model id ("org/name"), whose `files` (glob patterns)
    are downloaded to, or taken from, the Hugging Face cache."""
    directory = Path(path)
    if directory.is_dir():
        return directory
    try:
        validate_repo_id(str(path))
    except HFValidationError:
        raise FileNotFoundError(f"checkpoint directory not found: {directory}") from None
    try:
        local = snapshot_download(str(path), revision=revision, allow_patterns=files)
    except (HfHubHTTPError, LocalEntryNotFoundError) as e:
        raise FileNotFoundError(
            f"checkpoint not found: {path} is no directory here and no model on the Hugging Face Hub ({e})"
        ) from None
    log.info("checkpoint %s from the Hugging Face Hub: %s", path, local)
    return Path(local)


def push_folder(save, repo_id: str, private: bool | None = None, token: str | None = None) -> str:
    """`save(directory)` writes a checkpoint folder; it is uploaded as the model repository
    `repo_id` (created if needed). Returns the commit's URL."""
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save(Path(tmp))
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, commit_message="Upload a Hume checkpoint"
        )
    return str(commit)
