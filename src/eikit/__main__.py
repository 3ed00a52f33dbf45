import sys

from eikit.cli import main

sys.exit(main())
