"""The course harness the notebooks use, and no topic does: claims checked in code (`checks`), graded
exercises with their prediction lock (`exercises`), and reference runs beside this run (`reference`).

It imports the core and itself; the core and the topics never import it (tests/test_layout.py).
"""
