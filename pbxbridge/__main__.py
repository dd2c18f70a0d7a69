import sys

from pbxbridge.cli.main import main

sys.exit(main())
