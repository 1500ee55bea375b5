"""SSH keys: the resource of the API, its rules and its routes."""
