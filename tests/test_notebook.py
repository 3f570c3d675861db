"""The Python API in a real Jupyter kernel: a cell's event loop is already running.

``asyncio.run`` refuses to start inside a running loop, which is where notebook users call
the API.  This executes a notebook with nbclient (a real IPython kernel): a plain
``iat.augment`` call in one cell, ``await iat.augment_async`` in the next, then the
dataset stages, and checks the cells' outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_the_api_runs_inside_a_jupyter_kernel(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    library = REPO / "templates" / "multiinstruct"
    samples = REPO / "examples" / "multiinstruct" / "samples.jsonl"
    cells = [
        "import instraug_dsl as iat\n"
        f"library = {str(library)!r}\n"
        "backend = iat.Backend(model='offline/rules')",
        # a plain call: the kernel's loop is running, the API must not need its own
        "sync = iat.augment([library], 'run-sync', backend=backend, tasks=['ITM'])\n"
        "print('sync', sync.summary.totals.requests)",
        # top-level await in the kernel's running loop
        "done = await iat.augment_async([library], 'run-async', backend=backend, tasks=['ITM'])\n"
        "print('async', done.summary.totals.requests)",
        f"data = iat.materialize('run-async', {str(samples)!r}, 'data')\n"
        "stats = iat.stats('run-async')\n"
        "print('rows', data.manifest.counts.written, 'kept', stats.totals.kept)",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    printed = "".join(
        out.get("text", "")
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    assert "sync 50" in printed and "async 50" in printed, printed
    rows, kept = printed.split("rows ", 1)[1].split()[0], printed.split("kept ", 1)[1].split()[0]
    assert int(rows) > 0 and int(kept) > 0
    summary = json.loads((tmp_path / "run-async" / "summary.json").read_text(encoding="utf-8"))
    assert summary["totals"]["reconciled"]
