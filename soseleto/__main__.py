import sys

from soseleto.cli import main

sys.exit(main())
