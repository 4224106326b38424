"""Notebook layer: magics, widgets and text displays (thin; delegates to the layers below)."""
