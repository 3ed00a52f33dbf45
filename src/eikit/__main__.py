import sys

from eikit.entry import main

sys.exit(main())
