"""Analytics: engagement rates a team can act on, and A/B tests whose winner holds up (SPEC §8)."""
