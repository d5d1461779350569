"""Built-in variants of deconstruct, registered through the same pluggy hooks as third-party plugins.

Installed as ``deconstruct.builtin`` (the repository keeps them in ``plugins/builtin``). The public modules
hold the hooks and the typed options and import no torch: each names its ``nn.Module`` by an import string
(``build="deconstruct.builtin._attention:Attention"``), imported when a model is built. The private
``_*.py`` modules hold the modules themselves.
"""
