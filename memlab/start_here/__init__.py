"""Lab 00, start here: what machine am I on, and how fast does a real LLM answer?

The lab itself runs on the core (the hardware card, `ml.load`, `ml.generate`); its own parts are few:
plots     the token timeline of one answer (TTFT, then every decode step)
solutions the worked solutions of the lab's exercises (memlab.course.exercises grades them)
cli       `memlab generate`
"""

from memlab.core.lazy import submodules

# each module imports when first read, so importing this topic (or its cli) stays light: core/lazy.py
__getattr__, __dir__ = submodules(__name__, ("plots", "solutions"))
