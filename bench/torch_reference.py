"""Our Transformer (docs/design.md) written in PyTorch, for the benchmarks only: it reads our parameter dict by name, so
the benches can check it gives ref's loss on the same weights before they time anything. Never imported by the
package."""
import math

from equalinfo.ref import transformer as tr


def torch_loss_fn(weights, cfg, seq_len, torch, device=None):
    """loss(inputs, targets) -> scalar tensor (mean CE + z-loss, all weights 1), autograd for the backward.

    weights: dict name -> torch tensor (requires_grad) with docs/design.md's names; inputs/targets: long tensors [B, T];
    device: where the bucket table and mask live (that of the weights; None: the CPU).
    """
    T = seq_len
    buckets = torch.tensor(tr.bucket_table(T, cfg.num_buckets, cfg.max_distance), device=device)
    mask = torch.triu(torch.full((T, T), float("-inf"), device=device), diagonal=1)
    H, dh = cfg.n_heads, cfg.head_dim

    def norm(x, scale):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + tr.RMS_EPS) * scale

    def loss_fn(inputs, targets):
        x = weights["embed"][inputs]
        B = x.shape[0]
        for i in range(cfg.n_layers):
            p = f"blocks.{i}."
            h = norm(x, weights[p + "attn_norm"])
            q, k, v = ((h @ weights[p + w]).view(B, T, H, dh).transpose(1, 2) for w in ("wq", "wk", "wv"))
            bias = weights[p + "rel_bias"][buckets].permute(2, 0, 1)
            scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias + mask
            ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * dh)
            x = x + ctx @ weights[p + "wo"]
            h = norm(x, weights[p + "mlp_norm"])
            x = x + (torch.relu(h @ weights[p + "w_gate"]) * (h @ weights[p + "w_up"])) @ weights[p + "w_down"]
        logits = norm(x, weights["final_norm"]) @ weights["unembed"]
        lse = torch.logsumexp(logits, -1)
        ce = lse - logits.gather(-1, targets[..., None])[..., 0]
        return (ce + cfg.z_loss * lse * lse).mean()

    return loss_fn
