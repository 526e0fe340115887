"""omniembed: one natively multimodal transformer for any-to-any embedding and retrieval."""

__version__ = "0.1.0"
