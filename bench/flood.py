"""The flood benchmark of the eviction policies: ``python bench/flood.py [--plot FILE] [--sweep SHARES]``.

The same as ``python -m memorystore flood`` (the logic is in
``memorystore._flood``, whose docstring defines the workload and the figures
E, R, R*, N and found).  The README's table and bench/results/flood.png come
from::

    python bench/flood.py --plot bench/results/flood.png --json bench/results/flood.json
    python bench/flood.py --sweep 0.05,0.1,0.15,0.2,0.3
    python bench/flood.py --sweep 0.05,0.1,0.15,0.2,0.3 --users 0.8
"""

import sys

from memorystore._flood import main

if __name__ == "__main__":
    sys.exit(main())
