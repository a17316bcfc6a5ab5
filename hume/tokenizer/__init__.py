"""The instruction tokenizer: a small sentencepiece model trained on LIBERO instructions.

`tokenizer.model` here is produced by scripts/train_tokenizer.py. It keeps Gemma's special ids
(pad 0, eos 1, bos 2, unk 3), so a real PaliGemma tokenizer directory can replace it
(`system2.tokenizer_path`) with no other change.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_TOKENIZER_DIR = Path(__file__).resolve().parent


def load_tokenizer(path: str | Path | None = None):
    """A transformers GemmaTokenizer from `path` (a directory holding tokenizer.model), default ours."""
    from transformers import GemmaTokenizer

    directory = Path(path) if path is not None else DEFAULT_TOKENIZER_DIR
    if not (directory / "tokenizer.model").is_file() and not (directory / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"no tokenizer in {directory}: expected tokenizer.model (sentencepiece) or tokenizer.json; "
            "set system2.tokenizer_path to a PaliGemma tokenizer directory, or leave it empty for ours"
        )
    # from_pretrained converts the sentencepiece model properly (it needs protobuf); constructing
    # GemmaTokenizer(vocab_file=...) directly yields a near-empty vocabulary in transformers 5.
    return GemmaTokenizer.from_pretrained(str(directory))
