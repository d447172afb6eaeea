"""The flag agreement's contract when alone: the flags started at one boundary are read at the next."""

from finetune_trainer.distributed import Control, FlagAgreement, WorldInfo


def test_alone_flags_started_are_collected_once_then_reset():
    agreement = FlagAgreement(Control(WorldInfo(rank=0, local_rank=0, world_size=1)), 2)
    assert not agreement.overlapped
    assert agreement.collect() == [False, False]  # nothing started yet
    agreement.start(True, False)
    assert agreement.collect() == [True, False]
    assert agreement.collect() == [False, False]
    agreement.start(False, True)
    agreement.drain()
    assert agreement.collect() == [False, False]
