"""Where and in what precision a training loop runs: the device, mixed precision, batch
transfer, the optimizer and one optimizer step. Shared by every job kind (fine-tuning in
``runs.finetune``, masked-LM pretraining in ``runs.pretrain``).

On CUDA the matmuls run in TF32, the forward pass under ``torch.autocast`` in bfloat16
where the GPU supports it (Ampere and later) and in float16 with a ``GradScaler``
otherwise, batches go to the GPU from pinned memory without blocking, and deterministic
kernels are requested, so that a job's seeds still decide its result on the same device.
On CPU everything stays float32 (autocast on CPU would be slower for BERT-sized models).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from seedlab.runs.jobs import JobFailed

# Parameters whose names end so are not decayed (BERT's recipe, and Hugging Face's).
NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias")


def default_device() -> str:
    """``'cuda'`` when a GPU is visible to this process, else ``'cpu'``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class Precision:
    """How one job computes on its device.

    ``dtype``: ``'bf16'``, ``'fp16'`` (with a grad scaler) or ``'fp32'``; ``pin``: move
    batches through pinned memory with ``non_blocking`` copies (CUDA only)."""

    device: str
    dtype: str
    pin: bool

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context a forward pass runs in (a no-op in fp32)."""
        import torch

        if self.dtype == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.dtype == "bf16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)

    def scaler(self) -> Any | None:
        """A ``GradScaler`` for fp16, None otherwise (bf16 has fp32's range)."""
        import torch

        return torch.amp.GradScaler("cuda") if self.dtype == "fp16" else None

    def to_device(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """``batch`` (CPU tensors) on this device; pinned and non-blocking on CUDA."""
        if not self.cuda:
            return dict(batch) if self.device == "cpu" else {k: v.to(self.device)
                                                               for k, v in batch.items()}
        return {k: v.pin_memory().to(self.device, non_blocking=True) for k, v in batch.items()}


def precision_for(device: str) -> Precision:
    """The precision a job uses on ``device`` (see the module docstring), with the
    process-wide CUDA settings it needs (TF32 matmuls, deterministic kernels) applied."""
    if not device.startswith("cuda"):
        return Precision(device, "fp32", pin=False)
    import torch

    # cuBLAS needs this workspace setting for deterministic matmuls; it must be set before
    # the first cuBLAS call of the process (a worker runs jobs one after another, so the
    # first job sets it).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    torch.use_deterministic_algorithms(True, warn_only=True)
    bf16 = torch.cuda.is_bf16_supported()
    return Precision(device, "bf16" if bf16 else "fp16", pin=True)


def adamw(model: Any, learning_rate: float, weight_decay: float, device: str, *,
          fused: bool = True) -> Any:
    """AdamW over ``model``'s parameters, weight decay off for biases and LayerNorms.
    ``fused``: the fused kernel (one launch for all parameters, what
    ``transformers.Trainer`` uses by default) on CPU and CUDA; False gives torch's
    default (``foreach``) implementation."""
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith(NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = fused and (device == "cpu" or device.startswith("cuda"))
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused)


def optimizer_step(model: Any, loss: Any, optimizer: Any, scheduler: Any,
                   scaler: Any | None = None) -> None:
    """Backpropagate ``loss`` (scaled when ``scaler`` is given), clip the gradient norm to
    1, step the optimizer and the learning-rate schedule, clear the gradients. Does not
    wait for the device: the loss is read by ``LossMeter``."""
    import torch

    if scaler is None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


class LossMeter:
    """The training loss as an exponential moving average, read from the device every
    ``every`` steps (each read makes the CPU wait for the GPU, so a CUDA loop reads it
    rarely; on CPU it costs nothing and is read every step).

    A loss that is not finite fails the job with the advice to lower the learning rate,
    naming the phase and the step where it first appeared."""

    def __init__(self, phase: str, device: str, decay: float = 0.9, every: int | None = None):
        self.phase = phase
        self.decay = decay
        self.every = every or (16 if device.startswith("cuda") else 1)
        self.pending: list[tuple[int, Any]] = []
        self.value: float | None = None

    def add(self, step: int, loss: Any) -> float | None:
        """Record the loss tensor of ``step``; returns the average as last read."""
        self.pending.append((step, loss.detach()))
        if len(self.pending) >= self.every:
            self.read()
        return self.value

    def read(self) -> float | None:
        """Read the pending losses now; returns the average."""
        if not self.pending:
            return self.value
        import torch

        values = torch.stack([loss.float() for _, loss in self.pending]).cpu().tolist()
        for (step, _), value in zip(self.pending, values):
            if not math.isfinite(value):
                self.pending.clear()
                raise JobFailed(f"{self.phase}: the loss became {value} at step {step}; lower"
                                " the learning rate")
            self.value = value if self.value is None else (
                self.decay * self.value + (1 - self.decay) * value)
        self.pending.clear()
        return self.value


def batches_of(order: Any, batch_size: int) -> Iterator[Any]:
    """Consecutive slices of ``order`` (a sequence of row indices) of ``batch_size``."""
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


__all__ = ["NO_DECAY", "LossMeter", "Precision", "adamw", "batches_of", "default_device",
           "optimizer_step", "precision_for"]
