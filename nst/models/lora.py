"""Low-rank adaptation (LoRA; Hu et al., ICLR 2022) of frozen encoders, through `peft`.

A target linear layer W (d_out x d_in, frozen) becomes

    y = W x + (lora_alpha / r) * B A x,    A: r x d_in (Kaiming-uniform init), B: d_out x r (zeros)

so training starts from the pretrained function exactly and only A and B learn. peft's
`inject_adapter_in_model` replaces each target module (matched by name suffix: "qkv", "proj",
"fc1", "fc2" in a timm ViT) with a lora.Linear holding the frozen base layer and the adapter.

timm fuses the query, key and value projections into one Linear `qkv` (d_in -> 3 d_in), so a
LoRA on "qkv" is ONE rank-r update of the stacked [W_q; W_k; W_v]: the three projections
share the r-dimensional subspace A, and B maps it to all three (3 d_in x r). That is rank r
in total, not rank r per projection as in the LoRA paper's W_q/W_v adapters; use a larger r
(or add "proj") for the same capacity.

Merging (`merge_lora`) folds W <- W + (lora_alpha / r) B A into each base layer and puts the
plain nn.Linear back, for export: the merged network has no peft modules and computes the
same function (up to float rounding).
"""

from __future__ import annotations

import typing

from torch import nn

LORA_TARGETS = ("qkv",)


def add_lora(
    module: nn.Module, rank: int, lora_alpha: float, targets: tuple[str, ...] | list[str]
) -> nn.Module:
    """Inject LoRA adapters of rank `rank` into `module`'s `targets` (in place); everything
    else in `module` is frozen, only the adapters' A and B require grad."""
    from peft import LoraConfig, inject_adapter_in_model

    if rank < 1:
        raise ValueError(f"lora rank must be at least 1, got {rank}")
    scale: typing.Any = lora_alpha  # peft annotates lora_alpha as int; any float scale works
    config = LoraConfig(
        r=rank, lora_alpha=scale, lora_dropout=0.0, target_modules=list(targets), bias="none"
    )
    inject_adapter_in_model(config, module)
    for name, p in module.named_parameters():
        p.requires_grad_("lora_" in name)
    return module


def lora_parameters(module: nn.Module) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if "lora_" in n)


def merge_lora(module: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer and replace the peft layer by the base (in
    place): W <- W + (lora_alpha / r) B A (module docstring)."""
    from peft.tuners.lora import LoraLayer

    for name, child in list(module.named_modules()):
        if not isinstance(child, LoraLayer):
            continue
        child.merge(safe_merge=True)
        base = child.get_base_layer()
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, base)
    return module
