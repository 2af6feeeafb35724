"""plait's Jupyter layer: the ``%%plait`` magic, live graph explorer and review widgets.

Load it in a notebook with ``%load_ext plait_jupyter``.
"""

__all__: list[str] = []
