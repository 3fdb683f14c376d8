"""How a bad request to the explorer is told apart from a bug."""

from __future__ import annotations

from ..errors import VaekitError


class RequestError(VaekitError):
    """A bad request to the explorer (HTTP 400), with a one-line message naming the problem and the fix."""
