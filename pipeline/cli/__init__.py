"""In-process subcommands of `headshot`: each module registers its own with `register(subparsers)`."""
