"""Tokenization: every modality becomes ids in one vocabulary (text BPE, image VQ-VAE, audio log-mel + VQ)."""
