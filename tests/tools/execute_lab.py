"""Execute one lab with its outputs kept, and write it light enough to ship: the executed reference notebook.

    python tests/tools/execute_lab.py labs/03_ttft.ipynb reference/epyc-avx2-2core/

The lab runs in a fresh kernel from `labs/` (as nbval runs it), in the mode the environment says
(MEMLAB_QUICK, MEMLAB_SOLUTIONS); an error in any cell fails it (exit 1, nothing written), since a
reference notebook is a good run. `reference_run.py` runs this under `peak_memory.py` in its full-mode pass.

What a reader does not need is stripped (`slim`): widget state and widget views (progress bars, whose
text is the state they started in), execution timestamps, `\\r`-overwritten progress lines in streams. Figures wider than
MAX_FIGURE_PX are scaled down and every PNG is stored with a 256-colour palette (matplotlib's flat colours
survive it; a figure shrinks 2-4x), so ten labs stay within a few MB.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import sys
from pathlib import Path

MAX_FIGURE_PX = 1100  # wide enough to read on a laptop page; the site shows them at most this wide
DROP_MIME = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")


def shrink_png(data: str) -> str:
    """A base64 PNG, scaled to at most MAX_FIGURE_PX wide and stored with a 256-colour palette."""
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(data)))
    if img.width > MAX_FIGURE_PX:
        img = img.resize((MAX_FIGURE_PX, round(img.height * MAX_FIGURE_PX / img.width)), Image.LANCZOS)
    img = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    smaller = base64.b64encode(out.getvalue()).decode()
    return smaller if len(smaller) < len(data) else data


def last_line_state(text: str) -> str:
    """A stream as a terminal shows it: of each `\\r`-overwritten line, only what was printed last."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def slim(nb: dict) -> dict:
    """The executed notebook without what a reader does not need (in place; returned for chaining)."""
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text = out["text"] if isinstance(out["text"], str) else "".join(out["text"])
                out["text"] = last_line_state(text)
                if not out["text"].strip():
                    continue
            data = out.get("data")
            if data is not None:
                if any(mime in data for mime in DROP_MIME):
                    continue  # a widget (a progress bar): its text/plain is the state it started in, 0%
                if "image/png" in data:
                    png = data["image/png"]
                    data["image/png"] = shrink_png(png if isinstance(png, str) else "".join(png))
                if not data:
                    continue
            kept.append(out)
        cell["outputs"] = kept
    return nb


def execute(lab: Path, out_dir: Path) -> Path:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(lab, as_version=4)
    client = NotebookClient(nb, timeout=None, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(lab.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    data = slim(json.loads(nbformat.writes(nb)))
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / lab.name
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lab", type=Path)
    ap.add_argument("out_dir", type=Path)
    args = ap.parse_args()
    if not re.match(r"\d\d_\w+\.ipynb$", args.lab.name) or not args.lab.is_file():
        print(f"execute_lab: {args.lab} is not a lab notebook (labs/NN_name.ipynb)", file=sys.stderr)
        return 2
    try:
        out = execute(args.lab.resolve(), args.out_dir)
    except Exception as e:  # CellExecutionError carries the cell and its traceback
        print(f"execute_lab: {args.lab.name} failed: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size / 2**10:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
