"""The one exception type handlers raise to answer with a Docker-shaped error."""
from __future__ import annotations


class ApiError(Exception):
    """Answered as `{"message": message}` with `status`, the way the engine words its errors."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r})"
