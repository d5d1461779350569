"""Tasks that need no download (see MECHANISMS.md §7): byte-level language modelling for now."""

from deconstruct.tasks._base import Task, TaskOptions

__all__ = ["Task", "TaskOptions"]
