"""The fast inference path (HumeConfig.compile): the policy's tensor work as traced graphs.

At the tiny sizes a refinement issues ~600 operator calls whose arithmetic is a small part of
their cost: Python, module calls and dispatch are the rest. Tracing each inference call once per
input shapes (torch.jit.trace) runs the same operators, in the same order, from one C++ graph, so
the results are bit for bit the eager ones.

Measured on the 2-core CPU (docs/benchmarks.md): tracing takes about a second and takes a third
off a tiny refinement; torch.compile (inductor) reached the same refinement time but took ~90 s to
compile, so it is not what this switch uses on the CPU.

Four graphs, as in the paper's split: System 2's prefix encoding (vision tower + VLM, keys and
values of every layer out), its best-of-N denoising loop over a cached prefix (the Euler loop
unrolled: one graph per number of steps), the value head, and System 1's whole cascade
(observation encoding + its Euler steps). Calls that need autograd (real-time chunking's guided
velocity) run eagerly. The graphs take the weights as inputs, so they see every in-place update
(a load, an optimiser step) and hold no copy of them: torch.jit keeps every graph it ever traced
in its global compilation unit (pytorch/pytorch#43119), which would otherwise keep old weights
alive after a move. That is also why graphs are traced only at load, for a new input signature
and after a move (HumePolicy._apply), never per update: each trace costs memory for good.
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


def _state(module: nn.Module) -> list[Tensor]:
    """The module's parameters and buffers as they are now (a graph takes them as inputs)."""
    return [t for _, t in module.named_parameters()] + [t for _, t in module.named_buffers()]


def _trace(module: nn.Module, weights: list[Tensor], inputs: tuple[Tensor, ...]) -> torch.jit.ScriptFunction:
    """A graph of `module(*inputs)` taking the module's weights as inputs too: it holds no weights
    (torch.jit's global compilation unit keeps every traced graph, and its constants, for good), and
    in-place weight updates reach it. The weights are passed as the example inputs themselves, so the
    tracer records the module's uses of them as uses of those inputs."""
    count = len(weights)

    def call(*args: Tensor):
        return module(*args[count:])

    with torch.no_grad(), warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.compile, which takes ~90 s per graph on this
        # CPU against < 1 s here for the same speed; the trace's shape-specialisation warnings are
        # expected (one graph per input signature).
        warnings.simplefilter("ignore")
        return torch.jit.trace(call, (*weights, *inputs), check_trace=False)


class FastPath:
    """Traced graphs of one policy's networks, one per call and input signature (shapes, dtypes,
    devices), traced on first use."""

    def __init__(self, system2: System2, value_head: ValueQueryHead, system1: System1):
        self.system2, self.value_head, self.system1 = system2, value_head, system1
        self._graphs: dict[tuple, tuple[list[Tensor], torch.jit.ScriptFunction]] = {}

    def clear(self) -> None:
        self._graphs.clear()

    def __len__(self) -> int:
        return len(self._graphs)

    def _run(self, key: tuple, build: Callable[[], nn.Module], inputs: tuple[Tensor, ...]):
        key = (*key, _signature(inputs))
        entry = self._graphs.get(key)
        if entry is None:
            module = build().eval()
            # The weight tensors themselves, looked up once (~0.2 ms for System 2): in-place updates
            # (loads, optimiser steps) reach the graph through them; a move replaces them and drops
            # the graphs (HumePolicy._apply).
            weights = _state(module)
            entry = (weights, _trace(module, weights, inputs))
            self._graphs[key] = entry
        weights, graph = entry
        with torch.no_grad():
            return graph(*weights, *inputs)

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
