"""Entry point: ``python -m finetune_trainer`` (alone or under torchrun)."""

import sys

from .recipe import main

if __name__ == "__main__":
    sys.exit(main())
