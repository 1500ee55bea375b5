"""API keys: the `gck_` bearer secrets that authenticate every API request."""
