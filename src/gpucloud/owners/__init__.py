"""Owners: the accounts that API keys act for and SSH keys belong to."""
