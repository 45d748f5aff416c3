"""lerec deployment tools: dev PKI, broker config, demo runner."""
