import sys

from pimsync.cli import main

sys.exit(main())
