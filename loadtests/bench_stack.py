"""A stack to benchmark on this machine: shards, Temporal, one worker and one API process.

    python loadtests/bench_stack.py --data-dir /tmp/ledgerflow-bench

starts 2 embedded PostgreSQL shards (durable: fsync on; `--shards N`), the Temporal dev
server (SQLite with WAL and synchronous=normal, as `ledgerflow dev` runs it), then the
settlement worker and the API in two child processes (`ledgerflow.bench.stack`). Once the
API answers `/readyz`, it prints the API URL, an API key and the Temporal address (and writes
them to DATA_DIR/bench-stack.json), and stops everything on Ctrl-C or SIGTERM. Everything
listens on loopback only. Drive it with `ledgerflow bench --url URL --api-key KEY
--temporal-address ADDRESS --shard-dsns DSN,...` or Locust.

`ledgerflow bench` without `--url` starts the same stack itself, one per `--shards` count.
"""

import argparse
import json
import signal
from dataclasses import asdict
from pathlib import Path

from ledgerflow.bench.stack import (
    HOST,
    Services,
    StackConfig,
    new_api_key,
    run_child,
    started_stack,
    wait_until_serving,
)

# chaos.py builds its own drill from the same pieces.
__all__ = ["HOST", "Services", "StackConfig", "new_api_key", "run_child", "wait_until_serving"]


def main() -> None:
    """Start the stack, print where it is, and run until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--batch-window-ms", type=int, default=5)
    parser.add_argument("--batch-size-max", type=int, default=60)
    parser.add_argument("--in-flight-max", type=int, default=1)
    parser.add_argument("--sync-wait-s", type=float, default=1.0)
    parser.add_argument("--pool-size-max", type=int, default=16)
    args = parser.parse_args()
    tuning = StackConfig(
        shard_dsns=[],
        temporal_address="",
        api_port=0,
        batch_window_ms=args.batch_window_ms,
        batch_size_max=args.batch_size_max,
        in_flight_max=args.in_flight_max,
        sync_wait_s=args.sync_wait_s,
        pool_size_max=args.pool_size_max,
    )
    try:
        with started_stack(args.data_dir, shard_count=args.shards, config=tuning) as (
            target,
            config,
        ):
            info = {
                "url": target.url,
                "api_key": target.api_key,
                "temporal_address": target.temporal_address,
                "pids": target.pids,
                "config": asdict(config),
            }
            # Written whole and then renamed, so a reader polling for the file never sees half.
            stack_file = args.data_dir / "bench-stack.json"
            partial_file = stack_file.with_suffix(".json.partial")
            partial_file.write_text(json.dumps(info, indent=2))
            partial_file.replace(stack_file)
            print(json.dumps(info, indent=2), flush=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:
        raise SystemExit(f"bench stack: {error}") from error


def interrupt_once(signum: int, frame: object) -> None:
    """SIGTERM stops the stack like Ctrl-C does, through the `finally` that stops each piece.
    Later SIGTERMs are ignored, so a second one (a signal sent to the whole process group
    reaches this process again) cannot cut that shutdown short and leave servers running."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt_once)
    main()
