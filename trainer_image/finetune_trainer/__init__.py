"""finetune_trainer: the worker process of a FineTuneJob.

One process per rank (alone or under torchrun) fine-tunes a pretrained model with the HF
``Trainer``, commits checkpoints to object storage (docs/architecture.md "Checkpoint commit
protocol"), serves Prometheus metrics on
rank 0 ("Progress is pulled") and ends with the exit codes of the "Exit-code contract". The flow is in
:mod:`finetune_trainer.recipe`; every other module is one concern it composes.
"""

__version__ = "0.1.0"
