"""A small asyncio HTTP/1.1 server (h11) with what the Docker API needs: chunked streams and hijacks."""
