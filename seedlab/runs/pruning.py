"""Structured pruning of heads and MLPs (Michel et al. 2019; Prasanna et al. 2020).

Importance of a component is the magnitude of the gradient of the loss with respect to a
gate multiplying its output (1 = on), summed over the eval batches, normalised per layer
for heads (L2 over the heads of a layer) and over layers for MLPs. Pruning is iterative:
remove the ``step`` fraction of heads with the lowest importance (recomputed after each
step) while the score stays at or above ``threshold`` x the unpruned score, then remove
MLPs one at a time under the same rule. Transformers 5 BERT has no ``head_mask`` argument,
so the gates are forward hooks on each layer's self-attention and MLP output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Self

import numpy as np
import pandas as pd
import torch


def encoder_layers(model: torch.nn.Module) -> Sequence[torch.nn.Module]:
    """The transformer layers of a BERT-like model (``base_model.encoder.layer``)."""
    try:
        return model.base_model.encoder.layer
    except AttributeError as exc:
        raise ValueError("pruning needs a BERT-like model (base_model.encoder.layer)") from exc


class Gates:
    """Multiplicative gates on every head and MLP of a model, as forward hooks.

    ``head``: ``(layers, heads)``, ``mlp``: ``(layers,)``; both start at 1 (unpruned).
    Use as a context manager; hooks are removed on exit."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.layers = encoder_layers(model)
        n_heads = model.config.num_attention_heads
        device = next(model.parameters()).device
        self.head = torch.ones(len(self.layers), n_heads, device=device)
        self.mlp = torch.ones(len(self.layers), device=device)
        self._handles: list = []

    def _head_hook(self, index: int) -> Callable:
        def hook(_module, _inputs, output):
            attn = output[0]
            shape = attn.shape
            gated = attn.view(*shape[:-1], self.head.shape[1], -1) * self.head[index][:, None]
            return (gated.view(shape), *output[1:])
        return hook

    def _mlp_hook(self, index: int) -> Callable:
        def hook(_module, _inputs, output):
            return output * self.mlp[index]
        return hook

    def __enter__(self) -> Self:
        for i, layer in enumerate(self.layers):
            self._handles.append(layer.attention.self.register_forward_hook(self._head_hook(i)))
            self._handles.append(layer.output.dense.register_forward_hook(self._mlp_hook(i)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


Batch = dict[str, torch.Tensor]


def importance(model: torch.nn.Module, gates: Gates, batches: Sequence[Batch],
               head_mask: np.ndarray, mlp_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised importance of each head ``(layers, heads)`` and MLP ``(layers,)`` under
    the given masks (pruned components get importance 0)."""
    model.eval()
    device = gates.head.device
    gates.head = torch.tensor(head_mask, dtype=torch.float32, device=device, requires_grad=True)
    gates.mlp = torch.tensor(mlp_mask, dtype=torch.float32, device=device, requires_grad=True)
    head_imp = torch.zeros_like(gates.head)
    mlp_imp = torch.zeros_like(gates.mlp)
    for batch in batches:
        loss = model(**batch).loss
        head_grad, mlp_grad = torch.autograd.grad(loss, [gates.head, gates.mlp])
        head_imp += head_grad.abs()
        mlp_imp += mlp_grad.abs()
    gates.head = gates.head.detach()
    gates.mlp = gates.mlp.detach()
    head = head_imp.cpu().numpy() * head_mask
    mlp = mlp_imp.cpu().numpy() * mlp_mask
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    head = np.divide(head, norms, out=np.zeros_like(head), where=norms > 0)
    total = np.linalg.norm(mlp)
    mlp = mlp / total if total > 0 else mlp
    return head, mlp


@dataclass
class PruneResult:
    """Final masks (1 = kept): ``head_mask (layers, heads)``, ``mlp_mask (layers,)``, the
    importance at the final step, and the score after each accepted step."""

    head_mask: np.ndarray
    mlp_mask: np.ndarray
    head_importance: np.ndarray
    mlp_importance: np.ndarray
    base_score: float
    history: list[dict] = field(default_factory=list)

    def frame(self, seed: int) -> pd.DataFrame:
        """Rows for the store's mask table: seed, component, layer, head, kept, importance."""
        rows = []
        layers, heads = self.head_mask.shape
        for layer in range(layers):
            for head in range(heads):
                rows.append((seed, "head", layer, head, bool(self.head_mask[layer, head]),
                             float(self.head_importance[layer, head])))
            rows.append((seed, "mlp", layer, -1, bool(self.mlp_mask[layer]),
                         float(self.mlp_importance[layer])))
        return pd.DataFrame(rows, columns=["seed", "component", "layer", "head", "kept",
                                           "importance"])


def prune(model: torch.nn.Module, batches: Sequence[Batch], score: Callable[[], float], *,
          threshold: float = 0.9, step: float = 0.1,
          log: Callable[[str], None] = print) -> PruneResult:
    """Iteratively prune heads, then MLPs, while ``score()`` (evaluated with the gates in
    place, e.g. eval accuracy) stays >= ``threshold`` x the unpruned score."""
    with Gates(model) as gates:
        layers, heads = gates.head.shape
        head_mask = np.ones((layers, heads), dtype=np.float32)
        mlp_mask = np.ones(layers, dtype=np.float32)

        def evaluate(h: np.ndarray, m: np.ndarray) -> float:
            gates.head = torch.tensor(h, device=gates.head.device)
            gates.mlp = torch.tensor(m, device=gates.mlp.device)
            with torch.no_grad():
                return float(score())

        base = evaluate(head_mask, mlp_mask)
        floor = threshold * base
        history = [{"component": "none", "kept_heads": int(head_mask.sum()),
                    "kept_mlps": int(mlp_mask.sum()), "score": base}]
        log(f"pruning: unpruned score {base:.4f}, floor {floor:.4f}")
        per_step = max(1, round(step * layers * heads))
        head_imp, mlp_imp = importance(model, gates, batches, head_mask, mlp_mask)
        while head_mask.sum() > per_step:
            order = [i for i in np.argsort(head_imp, axis=None) if head_mask.flat[i] > 0]
            trial = head_mask.copy()
            trial.flat[order[:per_step]] = 0
            s = evaluate(trial, mlp_mask)
            if s < floor:
                break
            head_mask = trial
            history.append({"component": "head", "kept_heads": int(head_mask.sum()),
                            "kept_mlps": int(mlp_mask.sum()), "score": s})
            log(f"pruning: {int(head_mask.sum())} heads kept, score {s:.4f}")
            head_imp, mlp_imp = importance(model, gates, batches, head_mask, mlp_mask)
        while mlp_mask.sum() > 1:
            candidates = [i for i in np.argsort(mlp_imp) if mlp_mask[i] > 0]
            trial = mlp_mask.copy()
            trial[candidates[0]] = 0
            s = evaluate(head_mask, trial)
            if s < floor:
                break
            mlp_mask = trial
            history.append({"component": "mlp", "kept_heads": int(head_mask.sum()),
                            "kept_mlps": int(mlp_mask.sum()), "score": s})
            log(f"pruning: {int(mlp_mask.sum())} MLPs kept, score {s:.4f}")
            head_imp, mlp_imp = importance(model, gates, batches, head_mask, mlp_mask)
        return PruneResult(head_mask, mlp_mask, head_imp, mlp_imp, base, history)
