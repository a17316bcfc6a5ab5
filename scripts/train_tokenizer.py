"""Train the small sentencepiece tokenizer shipped in hume/tokenizer/ on LIBERO task instructions.

Usage: .venv/bin/python scripts/train_tokenizer.py [--output hume/tokenizer] [--vocab-size 512]

The special ids follow Gemma (pad 0, eos 1, bos 2, unk 3) so that transformers' GemmaTokenizer
loads the result and a real PaliGemma tokenizer can replace it without code changes.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

import sentencepiece as spm

log = logging.getLogger("train_tokenizer")


def libero_instructions() -> list[str]:
    """Every distinct task instruction of every suite the installed LIBERO package ships."""
    from libero.libero import benchmark

    texts: set[str] = set()
    for make_suite in benchmark.get_benchmark_dict().values():
        suite = make_suite()
        texts.update(suite.get_task(i).language for i in range(suite.n_tasks))
    return sorted(texts)


def train(texts: list[str], output: Path, vocab_size: int) -> None:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        # Few, short sentences: let the trainer settle below vocab_size instead of failing.
        hard_vocab_limit=False,
        character_coverage=1.0,
        normalization_rule_name="identity",
        # Gemma's tokenizer adds no leading "▁" to the first word; train the same way.
        add_dummy_prefix=False,
        # Unseen characters map to byte pieces instead of <unk>.
        byte_fallback=True,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    output.mkdir(parents=True, exist_ok=True)
    (output / "tokenizer.model").write_bytes(model.getvalue())
    config = {"tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False}
    (output / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    size = spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()
    log.info("wrote %s (%d pieces, %d instructions)", output / "tokenizer.model", size, len(texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "hume/tokenizer")
    parser.add_argument("--vocab-size", type=int, default=768)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    train(libero_instructions(), args.output, args.vocab_size)


if __name__ == "__main__":
    main()
