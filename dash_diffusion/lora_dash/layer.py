"""``DashLinear`` and ``DashConv2d``: a frozen ``nn.Linear`` or ``nn.Conv2d`` with a LoRA-Dash adapter.

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

A convolution is the same computation on its weight as a matrix (the LoCon form of sd-scripts'
``conv_dim`` and PEFT's ``Conv2d`` LoRA): ``W`` (out x in x kh x kw) is read as ``W_mat`` (out x in*kh*kw),
each output pixel being ``W_mat`` times the flattened kh x kw patch of the input under it. ``A'`` then holds
r + s kernels of shape (in, kh, kw): ``A`` learnt and the right singular vectors ``V_s`` of ``W_mat``
reshaped; the down projection is one convolution with those kernels (the base layer's stride, padding and
dilation), the scale is per channel and the up projection a 1 x 1 convolution with ``U'``. By linearity this
is exactly the convolution with ``W + Delta W_mat`` reshaped, and the SVD, change rates and folding below
never need to know the difference.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import LORA_INITS
from .directions import SVD, Selection, batched_svd, select_from_svd


class DashLayer(nn.Module):
    """What :class:`DashLinear` and :class:`DashConv2d` share: the factors as matrices (``A`` r x fan_in,
    ``B`` out x r with ``fan_in`` = in for a Linear, in*kh*kw for a convolution), the directions, their
    selection, the folded update and merging. Subclasses build ``lora_A`` / ``lora_B`` and the forward.

    Adapter weights are created in float32 on the base layer's device, whatever the base dtype; under
    fp16/bf16 autocast they are cast per operation, without autocast the input is cast to float32 for
    the adapter path and the result back to the base output's dtype.
    """

    base_layer: nn.Module
    lora_A: nn.Module
    lora_B: nn.Module

    def _init_adapter(
        self, base_layer: nn.Module, fan_in: int, out_features: int, rank: int, alpha: float, num_directions: int, dropout: float
    ) -> dict:
        """Common state; returns the factory kwargs (device, float32) for the subclass's factors."""
        base_layer.requires_grad_(False)
        self.base_layer = base_layer
        self.in_features = int(fan_in)
        self.out_features = int(out_features)
        self.rank = int(rank)
        self.lora_alpha = float(alpha)
        self.scaling = self.lora_alpha / self.rank
        self.num_directions = int(num_directions)
        self.merged = False
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        return {"device": base_layer.weight.device, "dtype": torch.float32}

    def _init_directions(self, factory: dict) -> None:
        s = self.num_directions
        device = factory["device"]
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
        ``"kaiming"``: ``kaiming_uniform_(A, a=sqrt(5))``, ``A_ij ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
        """
        if init_lora_weights == "gaussian":
            nn.init.normal_(self.lora_A.weight, std=1.0 / self.rank)
        elif init_lora_weights == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        else:
            raise ValueError(f"init_lora_weights must be one of {', '.join(LORA_INITS)}, got {init_lora_weights!r}")
        nn.init.zeros_(self.lora_B.weight)

    # ------------------------------------------------------------------ the update as matrices
    def factor_matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` as matrices, (r x fan_in) and (out x r), sharing storage with the parameters."""
        return self.lora_A.weight.flatten(1), self.lora_B.weight.flatten(1)

    def weight_matrix(self) -> torch.Tensor:
        """The frozen base weight as an (out x fan_in) matrix."""
        return self.base_layer.weight.flatten(1)

    def folded_factors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The adapter as ``(A', column_scale, U')`` with ``Delta W = U' diag(column_scale) A'``.

        A' = [A ; V_s^T] ((r+s) x fan_in), column_scale = [alpha/r] * r + delta (r+s), U' = [B | U_s]
        (out x (r+s)). Differentiable in A, B and delta.
        """
        lora_A, lora_B = self.factor_matrices()
        down = torch.cat([lora_A, self.dash_V.T], dim=0)  # (r+s, fan_in)
        up = torch.cat([lora_B, self.dash_U], dim=1)  # (out, r+s)
        lora_scale = torch.full((self.rank,), self.scaling, device=down.device, dtype=self.dash_delta.dtype)
        column_scale = torch.cat([lora_scale, self.dash_delta])  # (r+s,)
        return down, column_scale, up

    def file_factors(self, down: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Matrices ``down`` (rank x fan_in) and ``up`` (out x rank) in the shapes LoRA files give this
        kind of layer (a Linear's are the matrices themselves)."""
        return down, up

    def _adapter_input(self, x: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
        adapter_in = self.lora_dropout(x)
        if not torch.is_autocast_enabled(x.device.type) and adapter_in.dtype != down.dtype:
            adapter_in = adapter_in.to(down.dtype)
        return adapter_in

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
        """float32 SVD of the frozen base weight (as a matrix)."""
        return batched_svd({"w": self.weight_matrix()})["w"]

    @torch.no_grad()
    def select_directions(self, svd: SVD | None = None) -> Selection:
        """Select the top-s directions of ``W`` by change rate under the current LoRA update and install
        them. ``svd`` may be precomputed (the frozen weight never changes)."""
        svd = svd if svd is not None else self.weight_svd()
        lora_A, lora_B = self.factor_matrices()
        selection = select_from_svd(svd, lora_A, lora_B, self.scaling, self.num_directions)
        self.set_directions(selection)
        return selection

    @torch.no_grad()
    def delta_weight(self) -> torch.Tensor:
        """The adapter's whole update ``Delta W = (alpha/r) B A + U_s diag(delta) V_s^T`` (out x fan_in), float32."""
        down, column_scale, up = (t.float() for t in self.folded_factors())
        return (up * column_scale) @ down

    @torch.no_grad()
    def merge(self) -> None:
        """Add ``Delta W`` into the base weight (in its dtype); the adapter path is skipped until unmerge."""
        if not self.merged:
            weight = self.base_layer.weight
            weight.add_(self.delta_weight().view_as(weight).to(device=weight.device, dtype=weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract ``Delta W`` from the base weight again (exact in float32, rounded in half precision)."""
        if self.merged:
            weight = self.base_layer.weight
            weight.sub_(self.delta_weight().view_as(weight).to(device=weight.device, dtype=weight.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, "
            f"alpha={self.lora_alpha:g}, num_directions={self.num_directions}, selected={self.directions_selected}"
        )


class DashLinear(DashLayer):
    """LoRA-Dash wrapper of a frozen ``nn.Linear`` (``base_layer``): ``lora_A`` is an ``nn.Linear(in, r)``,
    ``lora_B`` an ``nn.Linear(r, out)``."""

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
        factory = self._init_adapter(base_layer, base_layer.in_features, base_layer.out_features, rank, alpha, num_directions, dropout)
        factory["dtype"] = adapter_dtype
        self.lora_A = nn.Linear(self.in_features, self.rank, bias=False, **factory)
        self.lora_B = nn.Linear(self.rank, self.out_features, bias=False, **factory)
        self.reset_lora_parameters(init_lora_weights)
        self._init_directions(factory)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        down, column_scale, up = self.folded_factors()
        hidden = F.linear(self._adapter_input(x, down), down) * column_scale  # (..., r+s)
        return result + F.linear(hidden, up).to(result.dtype)  # (..., out)


class DashConv2d(DashLayer):
    """LoRA-Dash wrapper of a frozen ``nn.Conv2d`` (``base_layer``, ``groups=1``, zero padding): ``lora_A``
    is an ``nn.Conv2d(in, r, kernel)`` with the base's stride, padding and dilation, ``lora_B`` a 1 x 1
    ``nn.Conv2d(r, out)`` (PEFT's and sd-scripts' layout). ``in_features`` is the fan-in ``in*kh*kw``."""

    def __init__(
        self,
        base_layer: nn.Conv2d,
        rank: int,
        alpha: float,
        num_directions: int,
        dropout: float = 0.0,
        adapter_dtype: torch.dtype = torch.float32,
        *,
        init_lora_weights: str = "gaussian",
    ) -> None:
        super().__init__()
        if not isinstance(base_layer, nn.Conv2d):
            raise TypeError(f"DashConv2d wraps nn.Conv2d, got {type(base_layer).__name__}")
        if base_layer.groups != 1 or base_layer.padding_mode != "zeros" or isinstance(base_layer.padding, str):
            raise TypeError(
                f"DashConv2d wraps convolutions with groups=1, numeric zero padding; got groups={base_layer.groups}, "
                f"padding={base_layer.padding!r}, padding_mode={base_layer.padding_mode!r}"
            )
        kh, kw = base_layer.kernel_size
        fan_in = base_layer.in_channels * kh * kw
        factory = self._init_adapter(base_layer, fan_in, base_layer.out_channels, rank, alpha, num_directions, dropout)
        factory["dtype"] = adapter_dtype
        self.kernel_shape = (base_layer.in_channels, kh, kw)
        self.lora_A = nn.Conv2d(
            base_layer.in_channels, self.rank, (kh, kw), base_layer.stride, base_layer.padding, base_layer.dilation, bias=False, **factory
        )
        self.lora_B = nn.Conv2d(self.rank, self.out_features, 1, bias=False, **factory)
        self.reset_lora_parameters(init_lora_weights)
        self._init_directions(factory)

    def file_factors(self, down: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``down`` (rank x in*kh*kw) -> (rank, in, kh, kw) kernels, ``up`` (out x rank) -> (out, rank, 1, 1)."""
        return down.reshape(down.shape[0], *self.kernel_shape), up.reshape(*up.shape, 1, 1)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        down, column_scale, up = self.folded_factors()
        kernels, pointwise = self.file_factors(down, up)
        base = self.base_layer
        hidden = F.conv2d(self._adapter_input(x, down), kernels, None, base.stride, base.padding, base.dilation)
        hidden = hidden * column_scale[:, None, None]  # (N, r+s, H', W')
        return result + F.conv2d(hidden, pointwise).to(result.dtype)  # (N, out, H', W')


#: The base layer types LoRA-Dash can wrap and the wrapper of each.
DASH_LAYER_TYPES: dict[type[nn.Module], type[DashLayer]] = {nn.Linear: DashLinear, nn.Conv2d: DashConv2d}
