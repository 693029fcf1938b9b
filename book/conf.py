# Sphinx configuration of the course site (copied into the staged sources by book/sitebuild.py).
# MyST-NB renders the executed reference notebooks as they are: nothing is executed at build time.
project = "memlab"
author = "the memlab authors"
extensions = ["myst_nb"]
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence"]
html_theme = "sphinx_book_theme"
html_title = "memlab"
html_theme_options = {"home_page_in_toc": True, "show_toc_level": 2}
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
