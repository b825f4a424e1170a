"""Yiti OA's own plugins. Each is a package with a ``PLUGIN`` manifest and a ``hooks`` module."""
