"""Late fusion, the baseline of the early- vs late-fusion benchmark (bench/fusion.py): one transformer tower
per modality, joined only at the embedding.

Towers: text, image, audio, each a stack of omniembed.model.Block over its own token stream. Tokens are
routed by id range of the unified Vocabulary `[special | text | image | audio]`:
  - a text / image / audio id goes to its own tower only;
  - special ids (<bos>, <eos>, <embed>, markers, <frame>, time tokens) are structure, not content: every
    tower reads them, so each tower has its own <embed> position to pool and its own <bos> to start from.
A video is therefore the image tower over its frame codes plus the audio tower over its track (the towers
are per token modality, not per input modality: three towers cover text, image, audio, video and any
interleaving of them).

Each tower reads its tokens compacted (pads and other modalities' tokens removed, RoPE positions counted
over its own tokens), so no tower's hidden states depend on another modality's tokens, their count or
their place in the stream.

Heads:
  - embedding: each tower pools its own tokens (the config's pooling and embed attention), the pooled
    vectors of the towers that hold content in a row are averaged, and one shared Matryoshka projection
    maps that mean to max(embed_dims); `embed` L2-normalises it. A row with no content uses the text tower.
  - next-token: a proper next-token distribution over the whole vocabulary at every position, built from
    causal tower states only: the logits of modality m's ids come from tower m's state at its last token
    at or before t (each tower predicts its own modality's next tokens); the logits of special ids come
    from the tower of the latest content token (text before any). The towers meet only in that softmax's
    normaliser, never in hidden states. So the LM loss is comparable with the early-fusion trunk's, and
    what late fusion cannot do shows in it: a caption's words are predicted without seeing the image.

This is the CLIP-style reading of "late fusion" (separate towers joined at the embedding). Shukor et al.
(2025) call "late fusion" a vision encoder feeding a language decoder; this baseline is the stricter one,
so the fusion benchmark compares against towers that share nothing before the embedding.

Parameter matching: `match_tower_config(cfg, starts)` picks the towers' depth and width so the late model
has the parameter count of `OmniModel(cfg)` (within 1% where the search space allows; see the test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from omniembed.errors import ConfigError
from omniembed.model.config import ModelConfig
from omniembed.model.trunk import (Block, OmniModel, RMSNorm, additive_mask, attention_mask, positions_from_mask)

TOWERS = ("text", "image", "audio")
# kind codes, as omniembed.tokenization.vocab.Vocabulary.kinds returns them
KIND_SPECIAL = 0
TOWER_KIND = {"text": 1, "image": 2, "audio": 3}


# ---- routing: pure functions ----------------------------------------------------------------------------


def token_kinds(ids: torch.Tensor, starts: Sequence[int]) -> torch.Tensor:
    """0 special, 1 text, 2 image, 3 audio per id; starts = (text_start, image_start, audio_start). (B, T)."""
    return sum((ids >= s).long() for s in starts)


def compact(member: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather plan for the True entries of member (B, T), kept in order and moved to the front:
    index (B, Tm) into T and mask (B, Tm), True on real entries; Tm = the most members in a row (>= 1)."""
    counts = member.sum(dim=1)  # (B,)
    Tm = max(int(counts.max()) if member.numel() else 0, 1)
    # a stable sort of "not a member" puts members first, in their original order
    index = torch.sort((~member).to(torch.uint8), dim=1, stable=True).indices[:, :Tm]  # (B, Tm)
    mask = torch.arange(Tm, device=member.device)[None, :] < counts[:, None]
    return index, mask


def last_member_index(member: torch.Tensor) -> torch.Tensor:
    """For each position t, the index in the compacted stream of the last member at or before t, -1 if
    none yet. (B, T) -> (B, T)."""
    return member.long().cumsum(dim=1) - 1


def latest_content_kind(kinds: torch.Tensor, pad_mask: torch.Tensor, default: int) -> torch.Tensor:
    """The kind of the latest content (non-special, non-pad) token at or before each position; `default`
    before the first one. (B, T)."""
    content = (kinds != KIND_SPECIAL) & pad_mask
    T = kinds.shape[1]
    where = torch.where(content, torch.arange(T, device=kinds.device).expand_as(kinds), -1)
    last = where.cummax(dim=1).values  # (B, T) index of the latest content token, -1 if none
    found = kinds.gather(1, last.clamp(min=0))
    return torch.where(last >= 0, found, torch.full_like(found, default))


def pool_mean_of_present(pooled: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean over the towers that hold content in a row. pooled (B, M, D), present (B, M) bool -> (B, D).
    A row where no tower holds content takes tower 0 (text)."""
    w = present.to(pooled.dtype)
    none = w.sum(dim=1) == 0
    w[none, 0] = 1.0
    return (pooled * w.unsqueeze(-1)).sum(dim=1) / w.sum(dim=1, keepdim=True)


# ---- modules --------------------------------------------------------------------------------------------


@dataclass
class TowerState:
    """One tower's view of a batch: hidden (B, Tm, D) over its compacted tokens, index (B, Tm) of each into
    the input's T, mask (B, Tm) True on real tokens, present (B,) True where the row has this modality's
    content."""
    hidden: torch.Tensor
    index: torch.Tensor
    mask: torch.Tensor
    present: torch.Tensor


class Tower(nn.Module):
    """A stack of the trunk's Blocks over one modality's ids plus the special ids, with its own embedding
    table (local ids: specials first, then this modality's ids) and final norm."""

    def __init__(self, cfg: ModelConfig, n_special: int, n_content: int):
        super().__init__()
        self.n_special = n_special
        self.tok_emb = nn.Embedding(n_special + n_content, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, n_special + n_content, bias=False)

    def forward(self, local_ids, pad_mask, causal: bool, rope_cos, rope_sin, extra=None) -> torch.Tensor:
        """extra: (B, Tm, D) added to the token embeddings (the image tower's grid-cell embeddings)."""
        positions = positions_from_mask(pad_mask)
        cos = rope_cos[positions].unsqueeze(1)  # (B, 1, Tm, hd/2)
        sin = rope_sin[positions].unsqueeze(1)
        mask = additive_mask(attention_mask(pad_mask, causal))
        x = self.tok_emb(local_ids)  # (B, Tm, D)
        if extra is not None:
            x = x + extra
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.norm(x)


class LateFusionModel(nn.Module):
    """Per-modality towers joined at the embedding; the interface of OmniModel (forward, forward_lm,
    embed, embed_raw, generate, temperature, num_params, cfg).

    cfg is the TOWER shape (each of the three towers has cfg.n_layers blocks of width cfg.d_model) over the
    full unified vocabulary (cfg.vocab_size); starts = (text_start, image_start, audio_start) of it."""

    kind = "late"

    def __init__(self, cfg: ModelConfig, starts: Sequence[int]):
        super().__init__()
        cfg.require_vocab()
        self.cfg = cfg
        self.starts = check_starts(starts, cfg)
        n_special = self.starts[0]
        bounds = (*self.starts, cfg.vocab_size)
        self.ranges = {m: (bounds[i], bounds[i + 1]) for i, m in enumerate(TOWERS)}
        self.towers = nn.ModuleDict({m: Tower(cfg, n_special, hi - lo) for m, (lo, hi) in self.ranges.items()})
        self.grid_emb = nn.Embedding(cfg.image_tokens, cfg.d_model) if cfg.grid_position else None
        self._add_heads_and_init(cfg)
        if cfg.tie_embeddings:
            for tower in self.towers.values():
                tower.lm_head.weight = tower.tok_emb.weight

    _init_weights = OmniModel._init_weights
    _add_heads_and_init = OmniModel._add_heads_and_init
    # the trunk's helpers read only self.cfg: shared, not copied
    num_params = OmniModel.num_params
    temperature = OmniModel.temperature
    pool = OmniModel.pool
    _check = OmniModel._check
    embed = OmniModel.embed
    forward = OmniModel.forward
    grid_embedding = OmniModel.grid_embedding
    _generation_inputs = OmniModel._generation_inputs

    # ---- routing ------------------------------------------------------------------------------------------

    def _local_ids(self, ids: torch.Tensor, tower: str) -> torch.Tensor:
        lo, _ = self.ranges[tower]
        n_special = self.starts[0]
        return torch.where(ids < n_special, ids, ids - lo + n_special)

    def tower_states(self, ids, pad_mask=None, causal: bool = True, towers: Sequence[str] = TOWERS,
                     ) -> dict[str, TowerState]:
        """Each tower run over its own tokens (its modality's ids and every special id) of a batch."""
        pad_mask = self._check(ids, pad_mask)
        kinds = token_kinds(ids, self.starts)
        special = (kinds == KIND_SPECIAL) & pad_mask
        out = {}
        for m in towers:
            content = (kinds == TOWER_KIND[m]) & pad_mask
            index, mask = compact(content | special)
            local = self._local_ids(ids.gather(1, index), m)
            local = torch.where(mask, local, torch.full_like(local, self.cfg.pad_id))  # (B, Tm)
            extra = None
            if m == "image" and self.grid_emb is not None:
                extra = self.grid_embedding(ids).gather(1, index.unsqueeze(-1).expand(-1, -1, self.cfg.d_model))
            h = self.towers[m](local, mask, causal, self.rope_cos, self.rope_sin, extra)
            out[m] = TowerState(h, index, mask, content.any(dim=1))
        return out

    # ---- heads ----------------------------------------------------------------------------------------------

    def embed_raw(self, ids, pad_mask=None) -> torch.Tensor:
        """Unnormalised projection (B, max(embed_dims)) of the mean of the present towers' pooled vectors."""
        pad_mask = self._check(ids, pad_mask)
        kinds = token_kinds(ids, self.starts)
        # a tower with no content in any row is skipped, except text, the fallback of content-free rows
        used = [m for m in TOWERS if m == "text" or bool(((kinds == TOWER_KIND[m]) & pad_mask).any())]
        states = self.tower_states(ids, pad_mask, causal=self.cfg.embed_attention == "causal", towers=used)
        pooled = torch.stack([self.pool(s.hidden, s.mask) for s in states.values()], dim=1)  # (B, M, D)
        present = torch.stack([s.present for s in states.values()], dim=1)  # (B, M)
        return self.embed_head(pool_mean_of_present(pooled, present))

    def forward_lm(self, ids: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits (B, T, V): position t predicts token t+1 from causal tower states only."""
        pad_mask = self._check(ids, pad_mask)
        kinds = token_kinds(ids, self.starts)
        special = (kinds == KIND_SPECIAL) & pad_mask
        states = self.tower_states(ids, pad_mask, causal=True)
        n_special = self.starts[0]
        B, T = ids.shape
        logits = []
        special_logits = []
        for m in TOWERS:
            s = states[m]
            member = ((kinds == TOWER_KIND[m]) & pad_mask) | special
            last = last_member_index(member)  # (B, T)
            h = s.hidden.gather(1, last.clamp(min=0).unsqueeze(-1).expand(B, T, s.hidden.shape[-1]))  # (B, T, D)
            # before a tower's first token it has no state: zero logits, a uniform share over its ids
            h = h * (last >= 0).unsqueeze(-1).to(h.dtype)
            out = self.towers[m].lm_head(h)  # (B, T, n_special + n_m)
            special_logits.append(out[..., :n_special])
            logits.append(out[..., n_special:])
        home = latest_content_kind(kinds, pad_mask, default=TOWER_KIND["text"]) - 1  # (B, T) tower index
        specials = torch.stack(special_logits, dim=2)  # (B, T, 3, S)
        specials = specials.gather(2, home[:, :, None, None].expand(B, T, 1, n_special)).squeeze(2)
        return torch.cat([specials, *logits], dim=-1)  # (B, T, V) in vocabulary order

    # ---- generation ----------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, prompt_ids, max_new_tokens: int, allowed_ids=None, eos_id: int | None = None,
                 pad_mask=None) -> torch.Tensor:
        """Greedy decoding, same contract as OmniModel.generate (no KV cache: the towers are re-run on the
        grown stream each step, fine for captions of a few dozen tokens)."""
        single, ids, mask, bias = self._generation_inputs(prompt_ids, pad_mask, max_new_tokens, allowed_ids, eos_id)
        B, T = ids.shape
        was_training = self.training
        self.eval()
        done = torch.zeros(B, dtype=torch.bool, device=ids.device)
        out = []
        for _ in range(max_new_tokens):
            # pads in the middle of a row are never any tower's tokens, so new ids can go at the end
            last = (mask.long() * torch.arange(mask.shape[1], device=ids.device)).argmax(dim=1)
            logits = self.forward_lm(ids, mask)[torch.arange(B, device=ids.device), last].float()  # (B, V)
            if bias is not None:
                logits = logits + bias
            nxt = logits.argmax(dim=-1)
            nxt = torch.where(done, torch.full_like(nxt, self.cfg.pad_id), nxt)
            out.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            mask = torch.cat([mask, ~done[:, None]], dim=1)
            if eos_id is not None:
                done = done | (nxt == eos_id)
                if bool(done.all()):
                    break
        self.train(was_training)
        new = torch.stack(out, dim=1) if out else ids.new_zeros(B, 0)
        return new[0] if single else new


def check_starts(starts: Sequence[int], cfg: ModelConfig) -> tuple[int, int, int]:
    starts = tuple(int(s) for s in starts)
    if len(starts) != 3 or not 0 < starts[0] <= starts[1] <= starts[2] <= cfg.vocab_size:
        raise ConfigError(f"late fusion starts={list(starts)}: need (text_start, image_start, audio_start) "
                          f"with 0 < text <= image <= audio <= vocab_size={cfg.vocab_size}")
    if cfg.pad_id >= starts[0]:
        raise ConfigError(f"late fusion: pad_id={cfg.pad_id} must be a special id (< text_start={starts[0]})")
    return starts  # type: ignore[return-value]


def vocabulary_starts(vocab) -> tuple[int, int, int]:
    """(text_start, image_start, audio_start) of an omniembed.tokenization.vocab.Vocabulary."""
    return vocab.text_range.start, vocab.image_range.start, vocab.audio_range.start


# ---- parameter matching -----------------------------------------------------------------------------------


def block_params(d: int, hidden: int, head_dim: int) -> int:
    """Parameters of one Block: two RMSNorms, qkv + out, the two QK-norms, SwiGLU gate_up + down."""
    return 2 * d + 4 * d * d + 2 * head_dim + 3 * d * hidden


def late_params(cfg: ModelConfig, starts: Sequence[int]) -> int:
    """Parameter count of LateFusionModel(cfg, starts), without building it."""
    d, n_special = cfg.d_model, starts[0]
    bounds = (*starts, cfg.vocab_size)
    table = sum(n_special + bounds[i + 1] - bounds[i] for i in range(3)) * d * (1 if cfg.tie_embeddings else 2)
    towers = 3 * (cfg.n_layers * block_params(d, cfg.ffn_hidden, cfg.head_dim) + d)
    return table + towers + d * max(cfg.embed_dims) + 1


def early_params(cfg: ModelConfig) -> int:
    """Parameter count of OmniModel(cfg), without building it."""
    d = cfg.d_model
    table = cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2)
    return table + cfg.n_layers * block_params(d, cfg.ffn_hidden, cfg.head_dim) + d + d * max(cfg.embed_dims) + 1


def match_tower_config(cfg: ModelConfig, starts: Sequence[int], layers: int | None = None,
                       max_ffn_mult: float = 4.0, min_ffn_mult: float = 1.0) -> ModelConfig:
    """The tower shape whose LateFusionModel has OmniModel(cfg)'s parameter count.

    Searched: layers per tower (1..cfg.n_layers, or fixed by `layers`), width (multiples of 2 * n_heads up to
    cfg.d_model, heads kept) and SwiGLU hidden size (multiples of 16, between min and max ffn_mult x width).
    Among shapes within 1% of the target, the one closest to cfg's own shape (log-distance in depth, width
    and ffn ratio) wins; if none is within 1%, the closest count."""
    check_starts(starts, cfg)
    target = early_params(cfg)
    step = 2 * cfg.n_heads
    candidates = []
    for n_layers in ([layers] if layers else range(1, cfg.n_layers + 1)):
        for d in range(step, cfg.d_model + 1, step):
            base = replace(cfg, d_model=d, n_layers=n_layers, ffn_mult=1.0)
            fixed = late_params(base, starts) - 3 * n_layers * 3 * d * base.ffn_hidden
            ideal = (target - fixed) / (3 * n_layers * 3 * d)  # ffn hidden that would hit the target exactly
            for hidden in {16 * math.floor(ideal / 16), 16 * math.ceil(ideal / 16)}:
                if not min_ffn_mult * d <= hidden <= max_ffn_mult * d:
                    continue
                shape = replace(cfg, d_model=d, n_layers=n_layers, ffn_mult=(hidden - 0.5) / d)
                err = abs(late_params(shape, starts) - target) / target
                dist = (abs(math.log(n_layers / cfg.n_layers)) + abs(math.log(d / cfg.d_model))
                        + abs(math.log(shape.ffn_hidden / d / (cfg.ffn_hidden / cfg.d_model))))
                candidates.append((err, dist, shape))
    if not candidates:
        raise ConfigError(f"late fusion: no tower shape of width <= {cfg.d_model} and ffn ratio in "
                          f"[{min_ffn_mult}, {max_ffn_mult}] matches {target} parameters; the vocabulary may "
                          "dominate the count")
    close = [c for c in candidates if c[0] <= 0.01]
    if close:
        return min(close, key=lambda c: (c[1], c[0]))[2]
    return min(candidates, key=lambda c: c[0])[2]
