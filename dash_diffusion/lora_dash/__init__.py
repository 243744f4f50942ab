"""The LoRA-Dash method and nothing else (Si et al., ICLR 2025, arXiv 2409.01035).

- :mod:`.config`: ``DashConfig``, the adapter's hyper-parameters (r, alpha, s, t, targets).
- :mod:`.layer`: ``DashLinear`` and ``DashConv2d``, ``y = W x + b + (alpha/r) B A x + U_s diag(delta) V_s^T x``.
- :mod:`.directions`: SVDs of the frozen weights, change rates ``|u_i^T dW v_i| / sigma_i``, top-s selection.
- :mod:`.inject`: wrapping target ``nn.Linear`` / ``nn.Conv2d`` modules by qualified name, selecting, unwrapping.
- :mod:`.schedule`: the two-phase schedule driven by the optimizer step (delta joins the optimizer at the switch).
"""
