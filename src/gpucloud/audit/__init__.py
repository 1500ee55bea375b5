"""The audit log: who changed which key, when, from where; kept after the key is gone."""
