"""Each shard's durable timers for money due at a set time: hold expiry, delayed credits,
and reviews the API could not start."""
