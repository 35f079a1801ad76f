"""`python -m kit.live`: the five services and the stand-in payment provider as real processes."""
import sys

from kit.live.system import main

sys.exit(main())
