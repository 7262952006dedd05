"""The `score` command-line interface (see `score --help`)."""
