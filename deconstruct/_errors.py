"""Errors that the CLI turns into one clear line and exit code 2 (bad input) or 1 (run failure)."""

from __future__ import annotations


class DeconstructError(Exception):
    """Base class: a problem the user can fix. `str(err)` is the one line the CLI prints."""

    exit_code = 2


class SpecError(DeconstructError):
    """A spec that does not validate. Carries where (file, YAML path, line) and what would be valid."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message, self.path, self.file, self.line, self.hint = message, path, file, line, hint
        super().__init__(self.format())

    def format(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.path:
            where.append(self.path)
        text = (": ".join(where) + ": " if where else "") + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class PluginError(DeconstructError):
    """A plugin that fails to import, collides with another, or a name no plugin provides."""


class RunError(DeconstructError):
    """A run that failed for a reason worth one line (e.g. a non-finite loss)."""

    exit_code = 1


class DataError(DeconstructError):
    """A prepared dataset that is missing, incomplete, truncated or corrupt, or a source that cannot be read."""


class StorageError(DeconstructError):
    """The study database cannot be used (missing, damaged, read-only, unreachable): an environment fault."""

    exit_code = 1
