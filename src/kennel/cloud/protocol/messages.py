"""The HTTP request and response as the protocol layer sees them: plain data, no server types."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only header mapping; repeated header lines are joined with ``,`` (RFC 9110)."""

    __slots__ = ("_items",)

    def __init__(self, source: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        items: dict[str, str] = {}
        pairs = source.items() if isinstance(source, Mapping) else source
        for name, value in pairs:
            key = name.lower()
            items[key] = f"{items[key]},{value}" if key in items else value
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class HttpRequest:
    """What the gateway hands over: the path and query string still percent-encoded, as received."""

    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    body: bytes

    def __post_init__(self) -> None:
        # Every lookup below is case-insensitive; normalising once here keeps that a dict lookup.
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
