"""Logging in and out, sessions, passwords and login throttling."""
