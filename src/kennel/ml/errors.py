"""Errors the serving path raises for bad requests, each carrying the HTTP status to answer with.

Kennel's model server maps ``status_code`` straight onto the response; the messages are written for
the person who sent the request, so they say what was wrong and what would be accepted instead.
"""

from __future__ import annotations

from collections.abc import Iterable


class InferenceError(Exception):
    """Base class: anything the serving code refuses, with the HTTP status it deserves."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequestError(InferenceError):
    status_code = 400


class UnsupportedContentTypeError(InferenceError):
    status_code = 415

    def __init__(self, content_type: str | None, supported: Iterable[str]) -> None:
        self.content_type = content_type
        self.supported = tuple(supported)
        shown = repr(content_type) if content_type else "no Content-Type"
        super().__init__(f"unsupported content type {shown}; send one of: {', '.join(self.supported)}")


class UnsupportedAcceptError(InferenceError):
    status_code = 406

    def __init__(self, accept: str, supported: Iterable[str]) -> None:
        self.accept = accept
        self.supported = tuple(supported)
        super().__init__(
            f"cannot produce any of Accept: {accept!r}; ask for one of: {', '.join(self.supported)}"
        )


class PayloadTooLargeError(InferenceError):
    status_code = 413


class ImageDecodeError(InferenceError):
    status_code = 400


class ImageTooLargeError(InferenceError):
    """The image's dimensions (read from its header) exceed the limit: the decompression-bomb guard."""

    status_code = 400


class UrlFetchError(InferenceError):
    """The URL was allowed but fetching it failed (unreachable, timed out, non-2xx, too big)."""

    status_code = 400


class UrlNotAllowedError(InferenceError):
    """The URL's scheme or resolved address is refused by policy (SSRF guard).

    403 rather than 400: the request is well formed and would work against a public host; the server
    understands it and refuses to act on it, which is what 403 means. Telling this apart from a
    malformed request also lets a caller see at a glance that a policy switch, not a typo, is involved.
    """

    status_code = 403
