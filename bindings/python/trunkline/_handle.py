"""What every owner of a C handle shares: `with` support and freeing on garbage collection."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T", bound="OwnedHandle")


class OwnedHandle:
    """Subclasses define close(), which frees the C handle and must be idempotent."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
