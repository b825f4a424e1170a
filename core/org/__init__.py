"""The organisation: departments (a tree), users and roles."""
