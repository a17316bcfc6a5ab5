"""The shipped instruction tokenizer and the script that trains it."""

import importlib.util
import shutil
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


def _word_level(directory: Path) -> Path:
    """A word-level tokenizer (another model type than Gemma's) saved by transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<bos>", "<unk>", "pick", "up", "the", "bowl", "put", "on", "plate"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )
    tok.save_pretrained(str(directory))
    return directory


def test_a_tokenizer_loads_with_the_class_it_was_saved_with(tmp_path):
    tok = load_tokenizer(_word_level(tmp_path))
    ids, mask = tokenize(tok, ["Put the bowl on the plate"], 8)
    # Forced into GemmaTokenizer, every instruction became unknown tokens.
    assert ids[0, : int(mask.sum())].tolist() == [8, 6, 7, 9, 6, 10]
    assert (ids[0, int(mask.sum()) :] == 0).all()


def test_a_mostly_unknown_instruction_is_a_warning_naming_the_tokenizer_folder(tmp_path, caplog):
    tok = load_tokenizer(_word_level(tmp_path))
    with caplog.at_level("WARNING", logger="hume.tokenizer"):
        tokenize(tok, ["pick up the bowl", "open the top drawer"], 8)
        tokenize(tok, ["open the top drawer"], 8)  # the same instruction again: said once
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert (
        str(tmp_path) in warnings[0]
        and "'open the top drawer'" in warnings[0]
        and "3 of the 4" in warnings[0]
    )


def test_a_bare_sentencepiece_model_is_read_as_gemmas(tmp_path):
    """A folder holding only tokenizer.model (as openpi ships PaliGemma's) names no class: Gemma's,
    with <bos> first as openpi's tokenizer adds it."""
    shutil.copy(DEFAULT_TOKENIZER_DIR / "tokenizer.model", tmp_path / "tokenizer.model")
    text = "put the black bowl on the plate\n"
    assert load_tokenizer(tmp_path)(text)["input_ids"] == load_tokenizer()(text)["input_ids"]
    assert load_tokenizer(tmp_path)(text)["input_ids"][0] == 2
