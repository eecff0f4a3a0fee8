"""The harness's version, in a module of its own: the API client's User-Agent reads it without
importing the package's public face (which names the client)."""

__version__ = "0.1.0"
