"""The `kfashion` command line (kfashion.cli)."""
