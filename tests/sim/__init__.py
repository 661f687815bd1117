"""A deterministic, seeded world around the decision core (issue 16): `python -m tests.sim`.

The world (jar writers, YouTube, extractor workers, the backend, restarts, Redis, clocks) turns
what happens into the same events `supervisor.py` produces and feeds them to `core.step`; the
Redis side of the brakes is `redis_model`, proven equal to bull.py's Lua by
tests/test_sim_redis_model.py. `promises` checks P1-P7 after every step.
"""
