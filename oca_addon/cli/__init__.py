"""The `oca-proxy` command (main) and its subcommands: login/logout/status (account), demo,
doctor; the port checks they make before starting anything (ports)."""
