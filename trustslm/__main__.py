import sys

from trustslm.cli.main import main

sys.exit(main())
