"""The HTTP edge: the error shape, request bodies, authentication, middleware."""
