import sys

from tfmeta.cli import main

sys.exit(main())
