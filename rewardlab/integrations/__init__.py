"""Use rewardlab scorers inside other training libraries without a server."""
