"""PostgreSQL shards: pools, the shard map, migrations, the posting SQL, repositories."""
