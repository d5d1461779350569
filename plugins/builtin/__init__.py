"""Built-in variants of deconstruct, registered through the same pluggy hooks as third-party plugins.

Installed as ``deconstruct.builtin`` (the repository keeps them in ``plugins/builtin``). Hook modules here
import no torch at the top; each ``build`` imports its ``nn.Module`` on first use.
"""
