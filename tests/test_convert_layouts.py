"""One mapper for PaliGemma's weights in every transformers layout (hume/models/paligemma_weights.py,
used by `load_paligemma` and by both converters): a plain PaliGemma loads the same from each layout;
a tied head saved alone is the token embedding; an untied head saved beside it is dropped, with a
note in the log."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_models_system2_weights import paligemma, system2

from hume.models.paligemma_weights import LAYOUTS, WHY_UNTIED_HEAD, load_paligemma

SAVED = LAYOUTS[-1]  # what transformers 5's save_pretrained writes


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("paligemma")
    paligemma().save_pretrained(path)
    return load_file(str(path / "model.safetensors"))


def relayout(state: dict, layout) -> dict:
    out = {}
    for key, tensor in state.items():
        for part in ("vision", "projector", "language"):
            old, new = getattr(SAVED, part), getattr(layout, part)
            if key.startswith(old):
                out[new + key[len(old) :]] = tensor
                break
    assert len(out) == len(state)
    return out


@pytest.mark.parametrize("head", ["untied", "tied_alone"])
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name.split(" (")[0])
def test_every_layout_loads_the_same_weights(saved, layout, head, tmp_path, caplog):
    assert "save_pretrained" in SAVED.name
    state = relayout(saved, layout)
    embedding = saved[SAVED.embedding]
    if head == "untied":
        state[layout.lm_head] = embedding + 1.0
    else:  # safetensors' save_model keeps a tied pair once, under the head's name
        state[layout.lm_head] = state.pop(layout.embedding)
    save_file(state, str(tmp_path / "model.safetensors"))
    s2 = system2()
    with caplog.at_level("INFO", logger="hume.models.paligemma_weights"):
        load_paligemma(s2, tmp_path)
    ours = s2.state_dict()
    assert torch.equal(ours["vlm.embed_tokens.weight"], embedding)
    assert torch.equal(
        ours["vision_tower.encoder.layers.1.mlp.fc1.weight"],
        saved["vision_tower.encoder.layers.1.mlp.fc1.weight"],
    )
    assert torch.equal(ours["multi_modal_projector.weight"], saved["multi_modal_projector.linear.weight"])
    notes = [r.getMessage() for r in caplog.records if layout.lm_head in r.getMessage()]
    assert notes == (
        [f"{tmp_path / 'model.safetensors'}: {layout.lm_head!r} not used: {WHY_UNTIED_HEAD}"]
        if head == "untied"
        else []
    )
    assert not [r for r in caplog.records if r.levelname == "WARNING"], "every tensor has a place"
