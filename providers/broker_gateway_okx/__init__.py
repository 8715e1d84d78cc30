"""Built-in ``okx`` provider: OKX's OAuth broker (code and PKCE modes), DMA and FD broker operations,
and its sandbox simulator. docs/providers/okx.md is the operator's guide."""
