"""``DashLinear``: a frozen ``nn.Linear`` with a LoRA-Dash adapter.

LoRA-Dash (Si et al., "Unleashing the Power of Task-Specific Directions in Parameter Efficient
Fine-tuning", ICLR 2025, arXiv 2409.01035) computes::

    y = W x + b + (alpha / r) B A x + U_s diag(delta) V_s^T x

``A`` (r x in) and ``B`` (out x r, zeros) are the LoRA factors, ``U_s`` (out x s)
and ``V_s`` (in x s) the frozen task-specific directions chosen at the phase boundary, and ``delta``
(s values, zeros at the start) their learned scales. The whole update is a LoRA of rank r + s::

    B' = [ (alpha / r) B | U_s diag(delta) ]   (out x (r+s))
    A' = [ A ; V_s^T ]                         ((r+s) x in)

and the forward pass uses exactly that factorisation: one down projection ``x A'^T`` (tokens x (r+s)),
a per-column scale ``[alpha/r, ..., alpha/r, delta_1, ..., delta_s]`` and one up projection. It never
builds an out x in matrix (the reference code forms ``U_s diag(delta) V_s^T`` densely on every call).

``A`` starts Gaussian by default, ``A_ij ~ N(0, (1/r)^2)`` as PEFT's ``init_lora_weights="gaussian"`` (the
paper's SDXL code and diffusers' SDXL DreamBooth script); ``"kaiming"`` gives Kaiming-uniform with
``a = sqrt(5)``, i.e. ``U(-1/sqrt(in), 1/sqrt(in))`` with std ``1/sqrt(3 in)`` (PEFT's default, kohya's).
At r = 4 on SDXL's widths (in = 640 .. 2048) the Gaussian ``A`` is 11-20x larger. Either way ``B = 0``, so
the adapter starts as the identity update.

Before selection ``U_s`` and ``V_s`` are zero buffers, so the dash term is exactly 0 and ``dash_delta``
gets an exactly-zero gradient while still taking part in the graph (optimizers and DDP see a fixed set
of parameters for the whole run). ``forward`` never changes state; selecting directions is an explicit
call made by the training loop.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import LORA_INITS
from .directions import SVD, Selection, batched_svd, select_from_svd


class DashLinear(nn.Module):
    """LoRA-Dash wrapper of a frozen ``nn.Linear`` (``base_layer``).

    Adapter weights are created in float32 on the base layer's device, whatever the base dtype; under
    fp16/bf16 autocast they are cast per operation, without autocast the input is cast to float32 for
    the adapter path and the result back to the base output's dtype.
    """

    def __init__(
        self,
        base_layer: nn.Linear,
        rank: int,
        alpha: float,
        num_directions: int,
        dropout: float = 0.0,
        adapter_dtype: torch.dtype = torch.float32,
        *,
        init_lora_weights: str = "gaussian",
    ) -> None:
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"DashLinear wraps nn.Linear, got {type(base_layer).__name__}")
        base_layer.requires_grad_(False)
        self.base_layer = base_layer
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.rank = int(rank)
        self.lora_alpha = float(alpha)
        self.scaling = self.lora_alpha / self.rank
        self.num_directions = int(num_directions)
        self.merged = False
        device = base_layer.weight.device
        factory = {"device": device, "dtype": adapter_dtype}

        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(self.in_features, self.rank, bias=False, **factory)
        self.lora_B = nn.Linear(self.rank, self.out_features, bias=False, **factory)
        self.reset_lora_parameters(init_lora_weights)

        s = self.num_directions
        k = min(self.in_features, self.out_features)
        self.dash_delta = nn.Parameter(torch.zeros(s, **factory))
        self.register_buffer("dash_U", torch.zeros(self.out_features, s, **factory))
        self.register_buffer("dash_V", torch.zeros(self.in_features, s, **factory))
        self.register_buffer("dash_indices", torch.full((s,), -1, dtype=torch.int64, device=device))
        self.register_buffer("dash_change_rate", torch.zeros(k, dtype=torch.float32, device=device))

    @torch.no_grad()
    def reset_lora_parameters(self, init_lora_weights: str = "gaussian") -> None:
        """Re-initialise the LoRA factors: ``B = 0`` and ``A`` by ``init_lora_weights``.

        ``"gaussian"``: ``A_ij ~ N(0, std = 1/r)`` (PEFT's ``nn.init.normal_(A, std=1 / r)``).
        ``"kaiming"``: ``kaiming_uniform_(A, a=sqrt(5))``, ``A_ij ~ U(-1/sqrt(in), 1/sqrt(in))``.
        """
        if init_lora_weights == "gaussian":
            nn.init.normal_(self.lora_A.weight, std=1.0 / self.rank)
        elif init_lora_weights == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        else:
            raise ValueError(f"init_lora_weights must be one of {', '.join(LORA_INITS)}, got {init_lora_weights!r}")
        nn.init.zeros_(self.lora_B.weight)

    # ------------------------------------------------------------------ forward
    def folded_factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The adapter as ``(A', column_scale, U')`` with ``Delta W = U' diag(column_scale) A'``.

        A' = [A ; V_s^T] ((r+s) x in), column_scale = [alpha/r] * r + delta (r+s), U' = [B | U_s]
        (out x (r+s)). Differentiable in A, B and delta.
        """
        down = torch.cat([self.lora_A.weight, self.dash_V.T], dim=0)  # (r+s, in)
        up = torch.cat([self.lora_B.weight, self.dash_U], dim=1)  # (out, r+s)
        lora_scale = torch.full((self.rank,), self.scaling, device=down.device, dtype=self.dash_delta.dtype)
        column_scale = torch.cat([lora_scale, self.dash_delta])  # (r+s,)
        return down, column_scale, up

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        down, column_scale, up = self.folded_factors()
        adapter_in = self.lora_dropout(x)
        if not torch.is_autocast_enabled(x.device.type) and adapter_in.dtype != down.dtype:
            adapter_in = adapter_in.to(down.dtype)
        hidden = F.linear(adapter_in, down) * column_scale  # (..., r+s)
        return result + F.linear(hidden, up).to(result.dtype)  # (..., out)

    # ------------------------------------------------------------------ state changes
    @property
    def directions_selected(self) -> bool:
        """True once task-specific directions have been set."""
        return bool((self.dash_indices >= 0).any())

    @torch.no_grad()
    def set_directions(self, selection: Selection) -> None:
        """Install selected directions (``U_s``, ``V_s``, indices, change rates) into the buffers."""
        s = self.num_directions
        expected = {"U_s": (self.out_features, s), "V_s": (self.in_features, s), "indices": (s,)}
        for name, shape in expected.items():
            got = tuple(getattr(selection, name).shape)
            if got != shape:
                raise ValueError(f"set_directions: {name} has shape {got}, expected {shape}")
        self.dash_U.copy_(selection.U_s)
        self.dash_V.copy_(selection.V_s)
        self.dash_indices.copy_(selection.indices)
        self.dash_change_rate.copy_(selection.change_rates)

    @torch.no_grad()
    def weight_svd(self) -> SVD:
        """float32 SVD of the frozen base weight."""
        return batched_svd({"w": self.base_layer.weight})["w"]

    @torch.no_grad()
    def select_directions(self, svd: SVD | None = None) -> Selection:
        """Select the top-s directions of ``W`` by change rate under the current LoRA update and install
        them. ``svd`` may be precomputed (the frozen weight never changes)."""
        svd = svd if svd is not None else self.weight_svd()
        selection = select_from_svd(svd, self.lora_A.weight, self.lora_B.weight, self.scaling, self.num_directions)
        self.set_directions(selection)
        return selection

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """The adapter's whole update ``Delta W = (alpha/r) B A + U_s diag(delta) V_s^T`` (out x in), float32."""
        down, column_scale, up = (t.float() for t in self.folded_factors())
        return (up * column_scale) @ down

    @torch.no_grad()
    def merge(self) -> None:
        """Add ``Delta W`` into the base weight (in its dtype); the adapter path is skipped until unmerge."""
        if not self.merged:
            weight = self.base_layer.weight
            weight.add_(self.delta_weight().to(device=weight.device, dtype=weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract ``Delta W`` from the base weight again (exact in float32, rounded in half precision)."""
        if self.merged:
            weight = self.base_layer.weight
            weight.sub_(self.delta_weight().to(device=weight.device, dtype=weight.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"alpha={self.lora_alpha:g}, num_directions={self.num_directions}, selected={self.directions_selected}"
        )
