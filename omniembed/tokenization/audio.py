"""`AudioTokenizer`: waveform -> log-mel -> per-bin normalisation -> mel patches -> VQ codes, and back to mel.

One token covers `mel_patch_frames` hops (4 x 10 ms = 40 ms at the defaults: 25 tokens per second).

Tail policy: a wave of n samples gives M = ceil(n / (hop * mel_patch_frames)) tokens. The centred STFT yields
1 + n // hop frames; the mel is cut or padded at the end to exactly M * mel_patch_frames frames, padding with
the -100 dB floor (digital silence). So one second gives 25 tokens, and no sample of the input is dropped.
A wave of at most n_fft // 2 samples (too short for the reflect-padded STFT) is first extended with zeros;
exports with a dynamic length should declare a minimum above n_fft // 2 so that branch is never traced.

Normalisation: per-mel-bin mean and standard deviation of the training set's log-mel, learned by
`fit_normalizer` before training and saved with the weights, so the VQ works on unit-scale features.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from omniembed.tokenization.config import TokenizerConfig
from omniembed.tokenization.logmel import DB_FLOOR_AMIN, LogMel
from omniembed.tokenization.vq import VectorQuantizer, check_code_range, reconstruction_loss

SILENCE_DB = 10.0 * float(torch.log10(torch.tensor(DB_FLOOR_AMIN)))  # -100 dB


class ResBlock1d(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.GELU(), nn.Conv1d(width, width, 3, padding=1),
                                  nn.GELU(), nn.Conv1d(width, width, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AudioTokenizer(nn.Module):
    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        n_mels, width, dim, p = config.n_mels, config.audio_width, config.audio_code_dim, config.mel_patch_frames
        self.patch = p
        self.logmel = LogMel.from_config(config)
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))
        # Encoder: frame-level conv, then one stride-p conv per patch; the residual block sees neighbouring
        # patches so a code can use a little context.
        self.encoder = nn.Sequential(
            nn.Conv1d(n_mels, width, 3, padding=1), nn.GELU(),
            nn.Conv1d(width, width, p, stride=p), ResBlock1d(width), nn.GELU(),
            nn.Conv1d(width, dim, 1),
        )
        self.quantizer = VectorQuantizer(config.audio_codebook, dim, beta=config.vq_beta,
                                         decay=config.vq_decay, dead_after=config.vq_dead_after,
                                         cosine=config.vq_cosine)
        self.decoder = nn.Sequential(
            nn.Conv1d(dim, width, 3, padding=1), ResBlock1d(width), nn.GELU(),
            nn.ConvTranspose1d(width, width, p, stride=p), nn.GELU(),
            nn.Conv1d(width, n_mels, 3, padding=1),
        )

    @property
    def codebook_size(self) -> int:
        return self.config.audio_codebook

    @property
    def tokens_per_second(self) -> float:
        return self.config.audio_tokens_per_second

    def num_tokens(self, n_samples: int) -> int:
        step = self.config.hop * self.patch
        return (n_samples + step - 1) // step  # ceil without negative floor division, which ONNX would truncate

    # --- features -------------------------------------------------------------------------------------------
    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) float32 -> log-mel in dB cut/padded to whole patches, (B, n_mels, M * mel_patch_frames)."""
        if wave.dim() != 2 or wave.shape[0] < 1 or wave.shape[1] < 1:
            raise ValueError(f"audio wave: expected (B >= 1, n >= 1) float samples, got {tuple(wave.shape)}")
        n = wave.shape[1]
        if n <= self.config.n_fft // 2:  # reflect padding needs more samples than n_fft // 2: extend with silence
            wave = F.pad(wave, (0, self.config.n_fft // 2 + 1 - n))
        mel = self.logmel(wave)  # (B, n_mels, 1 + n // hop)
        frames = self.num_tokens(n) * self.patch
        # 1 + n // hop is never more than p frames short of M * p, so one pad of p then a cut is exact.
        mel = F.pad(mel, (0, self.patch), value=SILENCE_DB)
        return mel[:, :, :frames]

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    def denormalize(self, mel_n: torch.Tensor) -> torch.Tensor:
        return mel_n * self.mel_std[:, None] + self.mel_mean[:, None]

    @torch.no_grad()
    def fit_normalizer(self, mels: list[torch.Tensor]) -> None:
        """Learn per-bin mean/std from training log-mels, each (n_mels, T) or (B, n_mels, T)."""
        frames = torch.cat([m.reshape(-1, self.config.n_mels, m.shape[-1]).permute(1, 0, 2).reshape(
            self.config.n_mels, -1) for m in mels], dim=1)  # (n_mels, total frames)
        self.mel_mean.copy_(frames.mean(dim=1))
        self.mel_std.copy_(frames.std(dim=1).clamp_min(1e-3))

    # --- tokens ---------------------------------------------------------------------------------------------
    def encode_latent(self, mel_n: torch.Tensor) -> torch.Tensor:
        """Normalised mel (B, n_mels, M * p) -> (B, M, D)."""
        return self.encoder(mel_n).transpose(1, 2)

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel in dB with whole patches, (B, n_mels, M * p) -> (B, M) int64."""
        if mel.dim() != 3 or mel.shape[0] < 1 or mel.shape[1] != self.config.n_mels or mel.shape[2] < self.patch \
                or mel.shape[2] % self.patch:
            raise ValueError(f"audio mel: expected (B >= 1, {self.config.n_mels}, a multiple of {self.patch} frames) "
                             f"as AudioTokenizer.mel returns, got {tuple(mel.shape)}")
        return self.quantizer.lookup(self.encode_latent(self.normalize(mel)))

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) float32 at config.sample_rate -> (B, M) int64, M = ceil(n / (hop * mel_patch_frames))."""
        return self.encode_mel(self.mel(wave))

    def encode_one(self, wave: torch.Tensor) -> torch.Tensor:
        """(n,) -> (M,) int64."""
        if wave.dim() != 1:
            raise ValueError(f"audio wave: expected one (n,) wave, got {tuple(wave.shape)}")
        return self.encode(wave[None])[0]

    def decode_normalized(self, codes: torch.Tensor) -> torch.Tensor:
        z_q = self.quantizer.embed(codes)  # (B, M, D)
        return self.decoder(z_q.transpose(1, 2))  # (B, n_mels, M * p)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, M) int64 -> log-mel in dB, (B, n_mels, M * mel_patch_frames)."""
        if codes.dim() != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
            raise ValueError(f"audio codes: expected (B >= 1, M >= 1), got {tuple(codes.shape)}")
        check_code_range(codes, self.codebook_size, "audio codes")
        return self.denormalize(self.decode_normalized(codes))

    @torch.no_grad()
    def reconstruct(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) -> reconstructed log-mel in dB (compare with self.mel(wave))."""
        return self.decode(self.encode(wave))

    # --- training -------------------------------------------------------------------------------------------
    def forward(self, mel_n: torch.Tensor, autocast: bool = False):
        """Training pass on normalised mel (B, n_mels, M * p) -> (reconstruction, codes (B, M), commitment).
        The quantiser runs in fp32; `autocast` runs the conv stacks in bf16."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            z = self.encode_latent(mel_n)
        z_q, codes, commitment = self.quantizer(z.float())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            recon = self.decoder(z_q.transpose(1, 2))
        return recon.float(), codes, commitment

    def loss(self, mel_n: torch.Tensor, autocast: bool = False):
        """(loss to backpropagate, MSE in normalised units, codes) for one batch of normalised mel."""
        recon, codes, commitment = self(mel_n, autocast=autocast)
        loss, mse = reconstruction_loss(recon, mel_n, commitment)
        return loss, mse, codes
