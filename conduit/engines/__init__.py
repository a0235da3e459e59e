"""The learning engine: the router, its policies and its query features."""
