"""The web console: a static page at /console that manages SSH keys through the API."""
