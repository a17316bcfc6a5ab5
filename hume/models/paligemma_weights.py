"""PaliGemma's weights in every layout transformers has saved them, named as System 2's.

One mapper serves a plain PaliGemma checkpoint (`system2.paligemma_path`, loaded here) and the
PaliGemma inside a π0 or an authors' Hume checkpoint (hume/convert/system2.py). Layouts, relative
to the PaliGemma module's root, told apart by where the vision tower and the language model sit:
- transformers < 4.52 (the Hub's PaliGemma files, LeRobot's first π0, the authors' Hume):
  `vision_tower.vision_model.*`, `multi_modal_projector.linear.*`, `language_model.model.*`, head
  `language_model.lm_head.weight`;
- transformers 4.52 - 4.x modules (openpi, LeRobot's openpi port): `model.vision_tower.vision_model.*`,
  `model.multi_modal_projector.linear.*`, `model.language_model.*`, head `lm_head.weight`;
- transformers 5 modules (LeRobot since 2026): as 4.52, without `vision_model.`;
- transformers 5 `save_pretrained`: the < 4.52 names, but the vision tower without `vision_model.`.

Only the vision tower, the projector and the language model are System 2's (the action expert and
the state/action projections have no PaliGemma counterpart). SigLIP's pooling head is not used
(PaliGemma feeds the patch tokens before it), nor is the language-model head: System 2 never
decodes text. A head tied to the token embedding is saved once, under either name; a head saved
beside the embedding is dropped, tied or not, and an untied one is noted in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from hume.models.checkpoint_tensors import CheckpointError, SourceTensors
from hume.models.system2 import System2

log = logging.getLogger(__name__)

LOADED = ("vision_tower.", "multi_modal_projector.", "vlm.")  # System 2's PaliGemma parts


@dataclass(frozen=True)
class Layout:
    """Where PaliGemma's parts sit in one transformers generation, relative to its root."""

    name: str
    vision: str
    projector: str
    language: str
    lm_head: str

    @property
    def embedding(self) -> str:
        return self.language + "embed_tokens.weight"


LAYOUTS = (
    Layout(
        "transformers 4.52+ modules (openpi; LeRobot from mid-2025)",
        "model.vision_tower.vision_model.",
        "model.multi_modal_projector.linear.",
        "model.language_model.",
        "lm_head.weight",
    ),
    Layout(
        "transformers 5 modules (LeRobot)",
        "model.vision_tower.",
        "model.multi_modal_projector.linear.",
        "model.language_model.",
        "lm_head.weight",
    ),
    Layout(
        "transformers < 4.52 (the Hub's PaliGemma; LeRobot's first pi0; the authors' Hume)",
        "vision_tower.vision_model.",
        "multi_modal_projector.linear.",
        "language_model.model.",
        "language_model.lm_head.weight",
    ),
    Layout(
        "transformers 5 save_pretrained",
        "vision_tower.",
        "multi_modal_projector.linear.",
        "language_model.model.",
        "language_model.lm_head.weight",
    ),
)

WHY_SIGLIP_HEAD = "SigLIP's attention-pooling head: PaliGemma feeds the patch tokens before it"
WHY_TIED_HEAD = "the VLM's language-model head, tied to (equal to) the token embedding taken instead"
WHY_UNTIED_HEAD = (
    "the VLM's language-model head, an untied copy that differs from the token embedding System 2 "
    "reads; System 2 never decodes text, so it is unused"
)


def find_layout(source: SourceTensors, base: str) -> Layout:
    """The layout whose vision tower and language model both lie under `base`."""
    for layout in LAYOUTS:
        vision = base + layout.vision + "embeddings.patch_embedding.weight"
        language = base + layout.language + "layers.0.self_attn.q_proj.weight"
        if vision in source and language in source:
            return layout
    raise CheckpointError(
        f"{source.path}: no PaliGemma vision tower and language model under {base!r} in any known "
        f"layout ({'; '.join(layout.name for layout in LAYOUTS)})"
    )


def paligemma_names(source: SourceTensors, base: str, layout: Layout) -> dict[str, str]:
    """System 2's key (vision_tower.*, multi_modal_projector.*, vlm.*) -> the source key holding it.

    SigLIP's pooling head and a language-model head saved beside the embedding are marked dropped
    on `source`, with the reason; keys under `base` that are not PaliGemma's are left to the caller.
    """
    names: dict[str, str] = {}
    embed = base + layout.embedding
    for key in source.keys():
        if not key.startswith(base) or key == embed:
            continue
        rest = key[len(base) :]
        if rest.startswith(layout.vision):
            sub = rest[len(layout.vision) :]
            if sub.startswith("head."):
                source.drop(key, WHY_SIGLIP_HEAD)
            elif sub.startswith(("embeddings.", "encoder.", "post_layernorm.")):
                names["vision_tower." + sub] = key
        elif rest.startswith(layout.projector):
            names["multi_modal_projector." + rest[len(layout.projector) :]] = key
        elif rest.startswith(layout.language):
            sub = rest[len(layout.language) :]
            if sub.startswith(("layers.", "norm.")):
                names["vlm." + sub] = key
    names["vlm.embed_tokens.weight"] = _embedding(source, embed, base + layout.lm_head)
    return names


def _embedding(source: SourceTensors, embed: str, head: str) -> str:
    """The key of the token embedding System 2 reads (see the module's docstring on the head)."""
    if embed not in source:
        if head not in source:
            raise CheckpointError(f"{source.path}: no token embedding ({embed!r} or its tied {head!r})")
        return head  # tied, saved once under the head's name (save_model keeps the first name)
    if head in source:
        if torch.equal(source.peek(embed), source.peek(head)):
            source.drop(head, WHY_TIED_HEAD)
        else:
            source.drop(head, WHY_UNTIED_HEAD)
            log.info("%s: %r not used: %s", source.where(head), head, WHY_UNTIED_HEAD)
    return embed


def load_paligemma(system2: System2, path: str | Path) -> None:
    """Copy the PaliGemma vision tower, projector and Gemma decoder of `path` into `system2`.

    Raises CheckpointError naming the file and the tensor when one is missing or has another shape,
    before any weight is copied.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(f"PaliGemma checkpoint directory not found: {directory}")
    source = SourceTensors(directory)
    layout = find_layout(source, "")
    names = paligemma_names(source, "", layout)
    own = {k: v for k, v in system2.state_dict().items() if k.startswith(LOADED)}
    for key, target in own.items():
        if key not in names:
            raise CheckpointError(
                f"{source.path}: no tensor for System 2's {key} (is this a PaliGemma checkpoint "
                "with the sizes of the system2 config?)"
            )
        shape = source.shape(names[key])
        if shape != tuple(target.shape):
            raise CheckpointError(
                f"{source.where(names[key])}: tensor {names[key]} has shape {shape}, System 2's {key} "
                f"needs {tuple(target.shape)} (check the system2 sizes in the config)"
            )
    with torch.no_grad():
        for key, target in own.items():
            target.copy_(source.take(names[key]).to(target.dtype))
    unused = source.remaining()
    if unused:
        log.warning(
            "%s: %d tensors are not PaliGemma's vision tower, projector or language model and were not "
            "loaded (first: %r)",
            source.path,
            len(unused),
            unused[0],
        )
    log.info("loaded %d PaliGemma tensors from %s (%s)", len(own), directory, layout.name)
