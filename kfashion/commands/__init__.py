"""The command line by topic; kfashion/cli.py assembles them into `kfashion`."""
