import subprocess
import sys

import pytest

import memlab as ml
from memlab.core import lazy


def test_a_topic_imports_its_modules_when_first_read():
    code = ("import sys, memlab.rag as rag\n"
            "assert 'memlab.rag.stores' not in sys.modules and 'stores' in dir(rag)\n"
            "assert rag.stores.__name__ == 'memlab.rag.stores' and 'memlab.rag.stores' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_module_a_topic_names_exists_and_nothing_else_is_an_attribute():
    for topic in ml.TOPICS:
        package = getattr(ml, topic)
        for name in dir(package):
            if not name.startswith("_") and name != "submodules":
                assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        ml.rag.nope
    getattr_, dir_ = lazy.submodules("memlab.rag", ("chunks",))
    assert getattr_("chunks") is ml.rag.chunks and "chunks" in dir_()
