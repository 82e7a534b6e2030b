"""The sparse Mixture-of-Experts adapter: stacked encoder frames -> LM-width audio embeddings.

    z = x W_g (fp32); p = softmax(z); top-k experts, gates renormalised to sum to 1;
    y = Norm(W_P (shared(x) + sum_{i in top-k} g_i E_i(x)))

Each expert is a feed-forward block with SiLU. No token is dropped. The load-balancing loss is
L_aux = E * sum_e f_e * P_e over valid (non-padding) tokens, with f_e the fraction of the k routing
slots that go to expert e and P_e the mean router probability of e: perfectly balanced routing gives
1.0. The router z-loss is the mean squared log-sum-exp of the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AdapterOutput:
    hidden_states: torch.Tensor  # (tokens, lm_hidden)
    router_logits: torch.Tensor  # (tokens, experts), fp32
    router_probs: torch.Tensor
    expert_indices: torch.Tensor  # (tokens, top_k)
    gates: torch.Tensor  # (tokens, top_k), renormalised
    aux_loss: torch.Tensor
    z_loss: torch.Tensor
    expert_load: torch.Tensor  # (experts,): fraction of valid routing slots per expert


class Expert(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(width, hidden)
        self.down = nn.Linear(hidden, width)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


class MoEAdapter(nn.Module):
    def __init__(self, in_width: int, out_width: int, num_experts: int = 8, top_k: int = 2,
                 num_shared: int = 1, hidden: int = 2048, norm_eps: float = 1e-6):
        super().__init__()
        self.num_experts, self.top_k = num_experts, top_k
        self.router = nn.Linear(in_width, num_experts, bias=False)
        self.experts = nn.ModuleList(Expert(in_width, hidden) for _ in range(num_experts))
        self.shared = nn.ModuleList(Expert(in_width, hidden) for _ in range(num_shared))
        self.proj = nn.Linear(in_width, out_width)
        self.norm = nn.RMSNorm(out_width, eps=norm_eps)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> AdapterOutput:
        """x: (tokens, in_width); valid: (tokens,) bool, False for padding tokens."""
        if valid is None:
            valid = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        with torch.autocast(device_type=x.device.type, enabled=False):  # the router stays in fp32
            logits = nn.functional.linear(x.float(), self.router.weight.float())
        probs = logits.softmax(dim=-1)
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        gates = top_p / top_p.sum(dim=-1, keepdim=True)
        mixed = torch.zeros_like(x)
        for shared in self.shared:
            mixed = mixed + shared(x)
        for e, expert in enumerate(self.experts):
            token, slot = (top_i == e).nonzero(as_tuple=True)
            if token.numel():
                out = expert(x[token]) * gates[token, slot].unsqueeze(-1).to(x.dtype)
                mixed = mixed.index_add(0, token, out)
        hidden = self.norm(self.proj(mixed))
        aux, z, load = self.losses(logits, probs, top_i, valid)
        return AdapterOutput(hidden, logits, probs, top_i, gates, aux, z, load)

    def losses(self, logits, probs, top_i, valid):
        n = valid.sum()
        if n == 0:
            zero = logits.sum() * 0
            return zero, zero, torch.zeros(self.num_experts, device=logits.device)
        v = valid.float()
        slots = nn.functional.one_hot(top_i, self.num_experts).float().sum(dim=1)  # (tokens, experts)
        load = (slots * v[:, None]).sum(0) / (n * self.top_k)
        mean_prob = (probs * v[:, None]).sum(0) / n
        aux = self.num_experts * (load * mean_prob).sum()
        z = ((torch.logsumexp(logits, dim=-1) ** 2) * v).sum() / n
        return aux, z, load.detach()


class DenseAdapter(nn.Module):
    """A dense MLP with as many parameters as the MoE adapter activates per token (the benchmark's
    baseline): hidden = (top_k + shared) * expert hidden."""

    def __init__(self, in_width: int, out_width: int, hidden: int, norm_eps: float = 1e-6):
        super().__init__()
        self.mlp = Expert(in_width, hidden)
        self.proj = nn.Linear(in_width, out_width)
        self.norm = nn.RMSNorm(out_width, eps=norm_eps)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(self.proj(self.mlp(x)))
