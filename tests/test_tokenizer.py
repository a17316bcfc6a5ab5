"""The shipped instruction tokenizer and the script that trains it."""

import importlib.util
from pathlib import Path

import pytest
import torch

from hume.models.configuration_hume import HumeConfig
from hume.policy.transforms import tokenize
from hume.tokenizer import DEFAULT_TOKENIZER_DIR, load_tokenizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_tokenizer", ROOT / "scripts/train_tokenizer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gemma_special_ids_and_small_file(tokenizer):
    assert (
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        tokenizer.bos_token_id,
        tokenizer.unk_token_id,
    ) == (
        0,
        1,
        2,
        3,
    )
    assert (DEFAULT_TOKENIZER_DIR / "tokenizer.model").stat().st_size < 64_000
    assert len(tokenizer) <= HumeConfig().system2.vocab_size


def test_every_libero_instruction_tokenizes_to_words_within_48(tokenizer, script):
    texts = script.libero_instructions()
    assert len(texts) > 100
    ids, mask = tokenize(tokenizer, texts, 48)
    lengths = mask.sum(1)
    assert int(lengths.max()) < 48, "no LIBERO instruction may be truncated"
    assert not (ids == tokenizer.unk_token_id).any()
    assert (ids[:, 0] == tokenizer.bos_token_id).all()
    assert (ids[~mask] == 0).all(), "padding is id 0, on the right"
    # Trained on these very sentences, words are mostly single tokens.
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("put the black bowl on the plate")["input_ids"])
    assert pieces == ["<bos>", "put", "▁the", "▁black", "▁bowl", "▁on", "▁the", "▁plate"]


def test_unseen_characters_fall_back_to_bytes(tokenizer):
    ids = tokenizer("Zebra! ©")["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Zebra! ©"


def test_training_script_writes_a_loadable_tokenizer(tmp_path, script):
    texts = ["pick up the red cup", "open the drawer", "put the cup in the drawer"] * 5
    script.train(texts, tmp_path, vocab_size=300)
    tok = load_tokenizer(tmp_path)
    ids, mask = tokenize(tok, ["open the drawer"], 8)
    assert ids.dtype == torch.long and mask.sum() == len(tok("open the drawer")["input_ids"])
    assert tok.pad_token_id == 0 and tok.bos_token_id == 2


def test_missing_tokenizer_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        load_tokenizer(tmp_path)
