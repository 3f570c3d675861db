"""One module of `iatc` commands per pipeline stage (registered by cli.py)."""
