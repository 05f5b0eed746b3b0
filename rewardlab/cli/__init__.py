"""The ``rewardlab`` command line: one small module per verb."""
