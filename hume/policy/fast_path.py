"""The fast inference path (HumeConfig.compile): the policy's tensor work as frozen, traced graphs.

At the tiny sizes a refinement issues ~600 operator calls whose arithmetic is a small part of
their cost: Python, module calls and dispatch are the rest. Tracing each inference call once per
input shapes (torch.jit.trace) and freezing it (weights folded in as constants) runs the same
operators, in the same order, from one C++ graph, so the results are bit-for-bit the eager ones.

Measured on the 2-core CPU (docs/benchmarks.md): tracing + freezing takes under a second and
halves a tiny refinement; torch.compile (inductor) reached the same tick but took ~90 s to compile,
so it is not what this switch uses on the CPU.

Three graphs, as in the paper's split: System 2's prefix encoding (vision tower + VLM, keys and
values of every layer out), its best-of-N denoising loop over a cached prefix (the Euler loop
unrolled: one graph per number of steps), the value head; and System 1's whole cascade (observation
encoding + its Euler steps). Calls that need autograd (real-time chunking's guided velocity) run
eagerly. A frozen graph holds the weights as they were when traced: `HumePolicy` drops its graphs
whenever its weights, device, dtype or mode change.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from hume.models.system1 import System1
from hume.models.system2 import PrefixCache, System2
from hume.models.value_query_head import ValueQueryHead


class _Prefix(nn.Module):
    def __init__(self, system2: System2):
        super().__init__()
        self.system2 = system2

    def forward(self, images: Tensor, image_masks: Tensor, tokens: Tensor, token_masks: Tensor):
        embs, mask = self.system2.embed_prefix(images, image_masks, tokens, token_masks)
        cache = self.system2.encode_prefix(embs, mask)
        return (embs, mask, *[t for kv in cache.kv for t in kv])


class _Sample(nn.Module):
    def __init__(self, system2: System2):
        super().__init__()
        self.system2 = system2

    def forward(self, pad_mask, state, noise, t0, dt, steps, temperature, *kv):
        cache = PrefixCache(list(zip(kv[0::2], kv[1::2], strict=True)), pad_mask)
        return self.system2.sample(cache, state, noise, t0, dt, steps, temperature)


class _Value(nn.Module):
    def __init__(self, value_head: ValueQueryHead):
        super().__init__()
        self.value_head = value_head

    def forward(self, prefix_embs: Tensor, prefix_mask: Tensor, actions: Tensor) -> Tensor:
        return self.value_head(prefix_embs, prefix_mask, actions, target=True)


class _Refine(nn.Module):
    def __init__(self, system1: System1, theta1: float, num_steps: int):
        super().__init__()
        self.system1 = system1
        self.theta1, self.num_steps = theta1, num_steps

    def forward(self, history: Tensor, offset: Tensor, start: Tensor, *images: Tensor) -> Tensor:
        views = dict(zip(self.system1.cameras, images, strict=True))
        return self.system1.refine(views, history, offset, start, self.theta1, self.num_steps)


def _signature(tensors: tuple[Tensor, ...]) -> tuple:
    return tuple((tuple(t.shape), t.dtype, t.device) for t in tensors)


class FastPath:
    """Frozen graphs of one policy's networks, traced on first use for each input signature."""

    def __init__(self, system2: System2, value_head: ValueQueryHead, system1: System1):
        self.system2, self.value_head, self.system1 = system2, value_head, system1
        self._graphs: dict[tuple, torch.jit.ScriptModule] = {}

    def clear(self) -> None:
        self._graphs.clear()

    def __len__(self) -> int:
        return len(self._graphs)

    def _run(self, key: tuple, build: Callable[[], nn.Module], inputs: tuple[Tensor, ...]):
        key = (*key, _signature(inputs))
        graph = self._graphs.get(key)
        if graph is None:
            module = build().eval()
            with torch.no_grad(), warnings.catch_warnings():
                # torch.jit is deprecated in favour of torch.compile, which takes ~90 s per graph on
                # this CPU against < 1 s here for the same speed; the trace's shape-specialisation
                # warnings are expected (one graph per signature).
                warnings.simplefilter("ignore")
                graph = torch.jit.freeze(torch.jit.trace(module, inputs, check_trace=False))
            self._graphs[key] = graph
        with torch.no_grad():
            return graph(*inputs)

    def encode_prefix(
        self, images: Tensor, image_masks: Tensor, tokens: Tensor, token_masks: Tensor
    ) -> tuple[Tensor, Tensor, PrefixCache]:
        """System2.embed_prefix + encode_prefix -> prefix embeddings, their mask, the cache."""
        embs, mask, *kv = self._run(
            ("prefix",), lambda: _Prefix(self.system2), (images, image_masks, tokens, token_masks)
        )
        return embs, mask, PrefixCache(list(zip(kv[0::2], kv[1::2], strict=True)), mask)

    def sample(self, cache: PrefixCache, state, noise, t0, dt, steps, temperature) -> Tensor:
        """System2.sample without guidance; the Euler loop is unrolled, so its length is in the key."""
        kv = tuple(t for pair in cache.kv for t in pair)
        inputs = (cache.pad_mask, state, noise, t0, dt, steps, temperature, *kv)
        return self._run(("sample", int(steps.max())), lambda: _Sample(self.system2), inputs)

    def value(self, prefix_embs: Tensor, prefix_mask: Tensor, actions: Tensor) -> Tensor:
        """The target critics' Q [E, B, N] of candidates [B, N, H, A]."""
        return self._run(("value",), lambda: _Value(self.value_head), (prefix_embs, prefix_mask, actions))

    def refine(
        self,
        images: dict[str, Tensor],
        history: Tensor,
        offset: Tensor,
        start: Tensor,
        theta1: float,
        num_steps: int,
    ) -> Tensor:
        """System1.refine without guidance."""
        views = tuple(images[c] for c in self.system1.cameras)
        return self._run(
            ("refine", theta1, num_steps),
            lambda: _Refine(self.system1, theta1, num_steps),
            (history, offset, start, *views),
        )
