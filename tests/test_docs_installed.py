"""The documentation the demo points to is part of the installed package."""
from skymodelling.demo import DOCS
from skymodelling.io.products import CATALOGUES


def test_docs_are_package_files_the_demo_names():
    names = {p.name for p in DOCS.glob("*.md")}
    for needed in ("extract.md", "enrich.md", "lines.md", "mean.md", "decompose.md",
                   "merge.md", "truth.md", "simulator.md"):
        assert needed in names, needed
    # the catalogue's page documents the catalogue files merge writes
    merge = (DOCS / "merge.md").read_text()
    assert all(str(name).split(".")[0] in merge for name in CATALOGUES)
