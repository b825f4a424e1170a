"""The portal shell: layout, home dashboard, language switch, health checks, security headers, errors."""
