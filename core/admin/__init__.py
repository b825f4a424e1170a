"""Administration pages: users, departments, roles and plugins."""
