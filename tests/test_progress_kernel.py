"""Importing the library inside a Jupyter kernel writes nothing into the page.

tqdm.auto warns "IProgress not found" at import in a kernel without ipywidgets (every book kernel);
that warning used to land in chapter 02's executed page.
"""

import nbformat
import pytest
from nbclient import NotebookClient


@pytest.mark.slow
def test_library_import_in_a_kernel_prints_no_warning():
    source = "import o365lib.progress, o365lib.tta.augment, o365lib.engine\nprint('imported')"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    NotebookClient(notebook, kernel_name="python3", timeout=300).execute()
    outputs = notebook.cells[0].outputs
    assert [o.get("name") for o in outputs] == ["stdout"], outputs
    assert outputs[0]["text"] == "imported\n"
