"""Makes `import equalinfo` work in a bench script run from a checkout, whether or not the project is installed.

Installed (`pip install -e .`), the import finds the package as usual. Not installed (a copied working tree on a
lent GPU machine, say), the repository's root is loaded as the package `equalinfo`, as setup.cfg's
`package_dir = equalinfo = .` maps it; the root itself never goes on sys.path, so `data` or `train` never
become top-level names.
"""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if importlib.util.find_spec("equalinfo") is None:
    _spec = importlib.util.spec_from_file_location("equalinfo", ROOT / "__init__.py",
                                                   submodule_search_locations=[str(ROOT)])
    _package = importlib.util.module_from_spec(_spec)
    sys.modules["equalinfo"] = _package
    _spec.loader.exec_module(_package)
