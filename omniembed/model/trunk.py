"""The trunk: one decoder-only transformer over the unified vocabulary, with two heads.

- next-token head (`forward_lm`): causal language modelling over every modality's ids, tied to the input
  embedding by default; also drives greedy `generate` (captions).
- Matryoshka embedding head (`embed`): pool the trunk's last hidden states, project to max(embed_dims),
  L2-normalise; any prefix of the vector, re-normalised, is itself an embedding.

Stability recipe from Chameleon: RMSNorm everywhere, QK-norm inside attention, z-loss (omniembed.train.losses).
The embedding pass may run the same weights with a bidirectional mask (GritLM).

Padding: `pad_mask` is (B, T) bool, True on real tokens. Pads never act as keys, and RoPE positions count
real tokens only, so a sequence's outputs do not depend on how much padding surrounds it, left or right.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.utils.checkpoint
import torch.nn.functional as F

from omniembed.model.config import ModelConfig


# ---- pure helpers -----------------------------------------------------------------------------------


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables, each (max_len, head_dim // 2)."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, hd) by per-token angles; cos/sin are (B, 1, T, hd/2). Half-split pairing."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).type_as(x)


def positions_from_mask(pad_mask: torch.Tensor, start: torch.Tensor | int = 0) -> torch.Tensor:
    """Position of each token counted over real tokens only, so padding never shifts RoPE. (B, T)."""
    return (pad_mask.long().cumsum(dim=1) - 1).clamp(min=0) + start


def attention_mask(pad_mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """(B, 1, T, T) bool, True = may attend. Pads are never keys; every query keeps its own key so a pad
    query's softmax is defined (its output is ignored)."""
    B, T = pad_mask.shape
    allowed = pad_mask[:, None, None, :].expand(B, 1, T, T)
    if causal:
        allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=pad_mask.device).tril()
    return allowed | torch.eye(T, dtype=torch.bool, device=pad_mask.device)


def additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """A bool "may attend" mask as a float bias (0 / -inf): CPU SDPA runs faster with a float mask."""
    if mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, device=mask.device).masked_fill(~mask, float("-inf"))


def generation_bias(cfg: "ModelConfig", prompt_len: int, max_new_tokens: int, allowed_ids, eos_id: int | None,
                    device) -> torch.Tensor | None:
    """Checks a greedy-generation request against max_len; returns the logit bias (-inf outside
    `allowed_ids` + eos) or None when every id is allowed. Shared by both fusion kinds' generate()."""
    if prompt_len + max_new_tokens > cfg.max_len:
        raise ValueError(f"prompt of {prompt_len} tokens + {max_new_tokens} new exceeds max_len={cfg.max_len}")
    if allowed_ids is None:
        return None
    allowed = torch.as_tensor(list(allowed_ids), dtype=torch.long, device=device)
    if eos_id is not None:
        allowed = torch.cat([allowed, allowed.new_tensor([eos_id])])
    if allowed.numel() == 0 or allowed.min() < 0 or allowed.max() >= cfg.vocab_size:
        raise ValueError(f"allowed_ids must be non-empty ids in [0, {cfg.vocab_size})")
    bias = torch.full((cfg.vocab_size,), float("-inf"), device=device)
    bias[allowed] = 0.0
    return bias


# ---- modules ----------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in fp32: under bf16 autocast the mean of squares is too coarse in an 8-bit mantissa
        return F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.head_dim, self.dropout = cfg.n_heads, cfg.head_dim, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        # QK-norm (Chameleon): bounds the attention logits so mixed-modality training does not diverge
        self.q_norm = RMSNorm(cfg.head_dim)
        self.k_norm = RMSNorm(cfg.head_dim)
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x, cos, sin, mask, cache: dict | None = None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, self.head_dim).unbind(dim=2)  # each (B, T, H, hd)
        q = apply_rope(self.q_norm(q).transpose(1, 2), cos, sin)  # (B, H, T, hd)
        k = apply_rope(self.k_norm(k).transpose(1, 2), cos, sin)
        v = v.transpose(1, 2)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)  # (B, H, T_past + T, hd)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        drop = self.dropout if self.training else 0.0
        if mask is not None and mask.dtype != torch.bool and mask.dtype != q.dtype:  # a float bias must match q under autocast
            mask = mask.to(q.dtype)
        # no mask: causal over right-padded rows, which lets CUDA take the flash kernel (see forward_lm)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=mask is None)
        y = y.transpose(1, 2).reshape(B, T, D)  # (B, T, D)
        return self.resid_drop(self.out(y))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.drop(self.down(F.silu(gate) * up))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model)
        self.mlp = SwiGLU(cfg)

    def forward(self, x, cos, sin, mask, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache)
        return x + self.mlp(self.mlp_norm(x))


class OmniModel(nn.Module):
    """The early-fusion trunk with its next-token and Matryoshka embedding heads."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        cfg.require_vocab()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.grid_emb = nn.Embedding(cfg.image_tokens, cfg.d_model) if cfg.grid_position else None
        if cfg.code_features != "none":  # filled from the tokenizers' codebooks before training (code_init), then fixed
            self.register_buffer("code_table", torch.zeros(cfg.vocab_size, cfg.code_feature_dim))
            if cfg.code_features == "replace":  # 1 for ids that enter by their own row, 0 for codes that do not
                self.register_buffer("code_free", torch.ones(cfg.vocab_size, 1))
            self.code_proj = nn.Linear(cfg.code_feature_dim, cfg.d_model, bias=False)
        self.checkpoint_activations = False  # train.activation_checkpointing: recompute blocks in backward
        self._add_heads_and_init(cfg)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def _add_heads_and_init(self, cfg: ModelConfig) -> None:
        """The embedding head, temperature and RoPE tables, then the weight init; LateFusionModel calls this
        too, so both fusion kinds start from the same recipe."""
        self.embed_head = nn.Linear(cfg.d_model, max(cfg.embed_dims), bias=False)
        # CLIP-style learnable temperature, kept as a log so it stays positive; shape (1,) not () because
        # FSDP2 cannot shard 0-d parameters
        self.log_temperature = nn.Parameter(
            torch.tensor([math.log(cfg.init_temperature)]), requires_grad=cfg.learn_temperature
        )
        cos, sin = rope_tables(cfg.head_dim, cfg.max_len, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        if getattr(self, "code_proj", None) is not None and cfg.code_features == "add":
            # starts as the trunk without code features; training grows the map where codebook vectors help
            nn.init.zeros_(self.code_proj.weight)
        for name, p in self.named_parameters():
            # scale the residual-stream projections by depth, per GPT-2, so the residual variance stays put
            if name.endswith(("attn.out.weight", "mlp.down.weight")):
                nn.init.normal_(p, std=cfg.init_std / math.sqrt(2 * cfg.n_layers))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.cfg.init_std)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def temperature(self) -> torch.Tensor:
        # floor at 0.01 as CLIP caps its logit scale at 100: a runaway scale destabilises training
        return self.log_temperature.exp().clamp(min=0.01).squeeze(0)  # () scalar

    # ---- the trunk ----------------------------------------------------------------------------------

    def _check(self, ids: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"ids must be (batch, seq) token ids, got shape {tuple(ids.shape)}")
        if ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence of {ids.shape[1]} tokens exceeds max_len={self.cfg.max_len}")
        if pad_mask is None:
            return ids != self.cfg.pad_id
        if pad_mask.shape != ids.shape:
            raise ValueError(f"pad_mask shape {tuple(pad_mask.shape)} differs from ids shape {tuple(ids.shape)}")
        return pad_mask.bool()

    def _trunk(self, ids, positions, mask, caches=None) -> torch.Tensor:
        cos = self.rope_cos[positions].unsqueeze(1)  # (B, 1, T, hd/2)
        sin = self.rope_sin[positions].unsqueeze(1)
        x = self.tok_emb(ids)  # (B, T, D)
        if self.cfg.code_features == "replace":
            x = x * F.embedding(ids, self.code_free)
        if self.cfg.code_features != "none":
            x = x + self.code_proj(F.embedding(ids, self.code_table))
        if self.training and self.cfg.image_dropout > 0:
            lo, hi = self.cfg.image_ids
            drop = (ids >= lo) & (ids < hi) & (torch.rand(ids.shape, device=ids.device) < self.cfg.image_dropout)
            x = x.masked_fill(drop.unsqueeze(-1), 0.0)  # the code's input gone, its grid cell (below) kept
        if self.grid_emb is not None:
            x = x + self.grid_embedding(ids)
        x = self.drop(x)
        mask = None if mask is None else additive_mask(mask)  # once for all layers
        recompute = self.checkpoint_activations and self.training and torch.is_grad_enabled() and caches is None
        for i, block in enumerate(self.blocks):
            if recompute:  # keep only each block's input; its activations are recomputed in backward
                x = torch.utils.checkpoint.checkpoint(block, x, cos, sin, mask, None, use_reentrant=False)
            else:
                x = block(x, cos, sin, mask, None if caches is None else caches[i])
        return self.norm(x)

    def grid_embedding(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, D): each image code's grid-cell embedding, zero on other tokens. Image codes
        come in whole images of image_tokens, so the k-th code of a sequence sits in cell k mod image_tokens
        (cumsum and mod export to ONNX, unlike a per-run counter)."""
        lo, hi = self.cfg.image_ids
        is_code = (ids >= lo) & (ids < hi)
        cell = torch.remainder(torch.cumsum(is_code.long(), dim=1) - 1, self.cfg.image_tokens).clamp(min=0)
        return self.grid_emb(cell) * is_code.unsqueeze(-1).to(self.grid_emb.weight.dtype)

    def hidden(self, ids, pad_mask=None, causal: bool = True) -> torch.Tensor:
        """Final-norm hidden states (B, T, D)."""
        pad_mask = self._check(ids, pad_mask)
        return self._trunk(ids, positions_from_mask(pad_mask), attention_mask(pad_mask, causal))

    # ---- heads --------------------------------------------------------------------------------------

    def forward_lm(self, ids: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits (B, T, V): position t predicts token t+1."""
        pad_mask = self._check(ids, pad_mask)
        if bool((pad_mask[:, 1:] <= pad_mask[:, :-1]).all()):
            # right-padded (as training batches are): causal attention alone never lets a real token see a
            # pad, so no mask is built and CUDA's SDPA can use its flash kernel; logits of pads are unused
            return self.lm_head(self._trunk(ids, positions_from_mask(pad_mask), None))
        return self.lm_head(self.hidden(ids, pad_mask, causal=True))

    def pool(self, h: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, D): the last real token, or the mean over real tokens."""
        if self.cfg.pooling == "last":
            last = (pad_mask.long() * torch.arange(pad_mask.shape[1], device=h.device)).argmax(dim=1)  # (B,)
            return h[torch.arange(h.shape[0], device=h.device), last]
        w = pad_mask.to(h.dtype).unsqueeze(-1)  # (B, T, 1)
        return (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1)

    def embed_raw(self, ids, pad_mask=None) -> torch.Tensor:
        """Unnormalised projection (B, max(embed_dims)); the loss slices and normalises prefixes itself."""
        pad_mask = self._check(ids, pad_mask)
        h = self.hidden(ids, pad_mask, causal=self.cfg.embed_attention == "causal")
        return self.embed_head(self.pool(h, pad_mask))

    def embed(self, ids, pad_mask=None, dim: int | None = None) -> torch.Tensor:
        """L2-normalised Matryoshka embedding (B, dim); dim defaults to the full max(embed_dims)."""
        full = max(self.cfg.embed_dims)
        dim = full if dim is None else dim
        if not 0 < dim <= full:
            raise ValueError(f"embedding dim {dim} must be in 1..{full} (trained prefixes: {self.cfg.embed_dims})")
        return F.normalize(self.embed_raw(ids, pad_mask)[:, :dim].float(), dim=-1)

    def forward(self, lm_ids=None, lm_mask=None, pair_ids=None, pair_mask=None, pair_b_ids=None,
                pair_b_mask=None, views=None) -> dict:
        """Both passes of one training step in one call, so DDP/FSDP see a single forward per backward.

        Returns logits for the LM batch; raw embeddings and the temperature for the pair batch (the
        temperature is returned so DDP sees it in the forward graph of the steps whose loss uses it).
        With pair_b_ids the two views run as separate passes (each padded to its own length, not the
        longer one's) and the embedding rows are a's then b's. `views`, a list of (ids, mask) batches of the
        same items, runs one pass per view instead; the embedding rows are the views' in order."""
        out = {}
        if lm_ids is not None:
            out["logits"] = self.forward_lm(lm_ids, lm_mask)
        if pair_ids is not None:
            out["embedding"] = self.embed_raw(pair_ids, pair_mask)
            if pair_b_ids is not None:
                out["embedding"] = torch.cat([out["embedding"], self.embed_raw(pair_b_ids, pair_b_mask)])
            out["temperature"] = self.temperature()
        if views is not None:
            out["embedding"] = torch.cat([self.embed_raw(ids, mask) for ids, mask in views])
            out["temperature"] = self.temperature()
        return out

    # ---- generation ---------------------------------------------------------------------------------

    def _generation_inputs(self, prompt_ids, pad_mask, max_new_tokens: int, allowed_ids, eos_id):
        """(single, ids (B, T), mask (B, T), logit bias or None) of a generate() call, checked."""
        single = prompt_ids.dim() == 1
        ids = prompt_ids[None] if single else prompt_ids
        mask = self._check(ids, None if pad_mask is None else (pad_mask[None] if single else pad_mask))
        bias = generation_bias(self.cfg, ids.shape[1], max_new_tokens, allowed_ids, eos_id, ids.device)
        return single, ids, mask, bias

    @torch.no_grad()
    def generate(self, prompt_ids, max_new_tokens: int, allowed_ids=None, eos_id: int | None = None,
                 pad_mask=None) -> torch.Tensor:
        """Greedy decoding with a KV cache. prompt_ids (B, T) or (T,); returns the new ids (B, n) or (n,),
        n <= max_new_tokens, with pad_id after a row's eos. `allowed_ids` restricts every emitted id to
        that set (eos_id is always allowed so a row can finish)."""
        single, ids, mask, bias = self._generation_inputs(prompt_ids, pad_mask, max_new_tokens, allowed_ids, eos_id)
        B, T = ids.shape
        was_training = self.training
        self.eval()
        caches = [{} for _ in self.blocks]
        h = self._trunk(ids, positions_from_mask(mask), attention_mask(mask, causal=True), caches)
        last = (mask.long() * torch.arange(T, device=ids.device)).argmax(dim=1)
        h = h[torch.arange(B, device=ids.device), last]  # (B, D): the last real prompt token
        n_real = mask.long().sum(dim=1)  # (B,) the next token's RoPE position
        key_mask = mask
        done = torch.zeros(B, dtype=torch.bool, device=ids.device)
        out = []
        for _ in range(max_new_tokens):
            logits = self.lm_head(h).float()  # (B, V)
            if bias is not None:
                logits = logits + bias
            nxt = logits.argmax(dim=-1)
            nxt = torch.where(done, torch.full_like(nxt, self.cfg.pad_id), nxt)
            out.append(nxt)
            if eos_id is not None:
                done = done | (nxt == eos_id)
                if bool(done.all()):
                    break
            if len(out) == max_new_tokens:
                break
            key_mask = torch.cat([key_mask, torch.ones(B, 1, dtype=torch.bool, device=ids.device)], dim=1)
            attn = key_mask[:, None, None, :]  # (B, 1, 1, T_k): the new token sees every real key
            h = self._trunk(nxt[:, None], n_real[:, None], attn, caches)[:, 0]
            n_real = n_real + 1
        self.train(was_training)
        new = torch.stack(out, dim=1) if out else ids.new_zeros(B, 0)
        return new[0] if single else new
