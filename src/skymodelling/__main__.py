"""Allow ``python -m skymodelling``."""
import sys

from .cli import main

sys.exit(main())
