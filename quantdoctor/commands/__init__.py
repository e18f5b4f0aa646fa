"""Subcommands of the ``quantdoctor`` CLI that sit on the rules core (check, rules, matrix)."""
