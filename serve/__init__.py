"""omniembed.serve: the gRPC service and its Python client."""
