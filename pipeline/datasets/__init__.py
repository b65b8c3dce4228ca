"""Dataset adapters: the synthetic demo corpus and user manifests."""
