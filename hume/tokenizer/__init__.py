"""The instruction tokenizer: a small sentencepiece model trained on LIBERO instructions, or the one
a checkpoint ships.

`tokenizer.model` here is produced by scripts/train_tokenizer.py. It keeps Gemma's special ids
(pad 0, eos 1, bos 2, unk 3), so a real PaliGemma tokenizer directory can replace it
(`system2.tokenizer_path`) with no other change. A folder loads with the class it was saved with
(transformers' AutoTokenizer), so a checkpoint's own tokenizer reads instructions as it did in
training; a bare `tokenizer.model` that names no class is a PaliGemma/Gemma sentencepiece model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TOKENIZER_DIR = Path(__file__).resolve().parent
# Past this share of unknown tokens an instruction is mostly lost on the model: say so.
UNKNOWN_SHARE = 0.5
# (tokenizer folder, instruction) pairs already checked, so that a policy re-reading one instruction
# every step tokenizes it once more only; bounded, as a long-running node sees new instructions.
_checked: set[tuple[str, str]] = set()
_CHECKED_MAX = 4096


def has_tokenizer(directory: Path) -> bool:
    return (directory / "tokenizer.model").is_file() or (directory / "tokenizer.json").is_file()


def _saved_class(directory: Path) -> str | None:
    config = directory / "tokenizer_config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text()).get("tokenizer_class")
    except json.JSONDecodeError as e:
        raise ValueError(f"{config}: not valid JSON ({e})") from None


def load_tokenizer(path: str | Path | None = None):
    """The tokenizer saved in `path` (default: ours), as the class it was saved with."""
    from transformers import AutoTokenizer, GemmaTokenizer, PreTrainedTokenizerFast

    directory = Path(path) if path is not None else DEFAULT_TOKENIZER_DIR
    if not has_tokenizer(directory):
        raise FileNotFoundError(
            f"no tokenizer in {directory}: expected tokenizer.model (sentencepiece) or tokenizer.json; "
            "set system2.tokenizer_path to a PaliGemma tokenizer directory, or leave it empty for ours"
        )
    if _saved_class(directory) is not None:
        return AutoTokenizer.from_pretrained(str(directory))
    if (directory / "tokenizer.json").is_file():
        # A tokenizers file names its own model, pre-tokenizer and post-processor.
        return PreTrainedTokenizerFast.from_pretrained(str(directory))
    # A bare sentencepiece model (openpi ships PaliGemma's so): Gemma's, which starts every text with
    # <bos> (openpi's tokenizer does; with no tokenizer_config.json transformers 5 would not).
    # from_pretrained converts the model properly (it needs protobuf); GemmaTokenizer(vocab_file=...)
    # yields a near-empty vocabulary in transformers 5.
    return GemmaTokenizer.from_pretrained(str(directory), add_bos_token=True)


def warn_if_unknown(tokenizer, text: str) -> None:
    """Log a warning, naming the tokenizer's folder, when more than half of an instruction's tokens
    are the unknown token: the model would read little of it (a tokenizer of another model?)."""
    key = (str(tokenizer.name_or_path), text)
    if tokenizer.unk_token_id is None or key in _checked:
        return
    if len(_checked) >= _CHECKED_MAX:
        _checked.clear()
    _checked.add(key)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    unknown = sum(i == tokenizer.unk_token_id for i in ids)
    if ids and unknown > UNKNOWN_SHARE * len(ids):
        log.warning(
            "the tokenizer in %s maps %d of the %d tokens of %r to the unknown token %r: the model reads "
            "little of this instruction (is this the checkpoint's own tokenizer?)",
            tokenizer.name_or_path,
            unknown,
            len(ids),
            text,
            tokenizer.unk_token,
        )
