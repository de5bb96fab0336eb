"""``python -m dynamo.nemo_switchyard``: run the proxy."""

import sys

from .cli import serve_main

if __name__ == "__main__":
    sys.exit(serve_main())
