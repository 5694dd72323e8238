import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared")
from vm.matrix import pytest_collection_modifyitems, pytest_report_header  # noqa: E402,F401
