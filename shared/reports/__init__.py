"""Renderings of the core's results for people: HTML pages, SVG charts and terminal text.

Reports may import ``shared.domain``; the core never imports reports, so it renders nothing and stays free of
presentation.  Like the core, reports do no I/O: ``tests/unit/test_layers.py`` keeps both rules.
"""
