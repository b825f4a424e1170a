"""Hook implementations of the approval plugin. Its features arrive in their own issues; for now it
ships its manifest, its (empty) migration branch and nothing in the menu, so nothing half-built shows."""
