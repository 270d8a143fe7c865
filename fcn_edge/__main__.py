"""``python -m fcn_edge`` is the same as the ``fcn-edge`` console script."""

from fcn_edge.cli import main

raise SystemExit(main())
