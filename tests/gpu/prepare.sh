#!/usr/bin/env bash
# Here (with network to PyPI): gather what a GPU machine with its own torch and no network lacks to run
# memlab, into folders git ignores: .whl/ (wheels of the pure-Python packages missing there, no torch,
# no numpy) and .gpu/ (the bundled model's GGUF in two halves: one call carries at most 64 MiB, the
# file is 94 MiB). Then run tests/gpu/device_check.sh there twice (see its header).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
PY=${PYTHON:-.venv/bin/python}
rm -rf .whl .gpu && mkdir -p .whl .gpu
# what the labs need beyond that machine's image (its package list: the device README's KINDS.md)
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any"
"$PY" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS -d .whl \
    nbval ipykernel gguf
# drop what the image already has (a second copy of numpy or pyzmq's ABI would break it)
for have in numpy pyyaml tqdm packaging psutil pytest pluggy iniconfig coverage jinja2 markupsafe pygments \
            attrs typing_extensions six python_dateutil requests urllib3 idna certifi charset_normalizer; do
    rm -f .whl/${have}-*.whl .whl/$(echo $have | tr _ -)-*.whl
done
# optional to ipykernel (the debugger) and IPython (completion), never used by nbval: 10 MB less of
# the 64 MiB that the run call carries beside half the model (47 MiB)
rm -f .whl/debugpy-*.whl .whl/jedi-*.whl .whl/parso-*.whl
GGUF=$("$PY" -c "from memlab.core import models; print(models.gguf_path())")
split -n 2 -d "$GGUF" .gpu/model.gguf.part
du -sh .whl .gpu; ls .whl
echo "the run call carries $(du -cb .whl/*.whl .gpu/model.gguf.part01 | tail -1 | cut -f1) bytes beside the working tree (limit 64 MiB in all)"
