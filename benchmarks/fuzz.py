"""The decoder fuzz at volume: 100,000 hypothesis cases per protocol (JSON, binary extension, gRPC), seeded.

The property and the strategies are the CI suite's (``tests/reliability/wire_fuzz.py``); CI runs 10,000
derandomized cases per protocol, this runs more with a seed of its own each time (``--seed`` repeats one),
shrinks a failure to its smallest case, and counts what the cases came to (decoded, or the error code that
refused them). Prints a table and writes the figures as JSON; docs/reliability.md quotes them.

    .venv/bin/python -m benchmarks.fuzz [--cases 100000] [--seed N] [--out fuzz.json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from modelport.server.protocols import grpc_codec, rest_codec
from modelport.server.protocols.generated import grpc_service_pb2 as pb

from tests.reliability.wire_fuzz import (
    MAX_BYTES,
    binary_requests,
    decoded_or_refused,
    grpc_requests,
    json_bodies,
)


@dataclass
class Run:
    """One protocol's run: cases, seconds, what they came to, and the failure (if any) with its case."""

    protocol: str
    cases: int = 0
    seconds: float = 0.0
    verdicts: dict[str, int] = field(default_factory=dict)
    failure: str | None = None


def _json_case(body: bytes) -> Any:
    return rest_codec.decode_infer_request(body, None, model_name="m", model_version="", max_bytes=MAX_BYTES)


def _binary_case(case: tuple[bytes, int | None]) -> Any:
    body, length = case
    return rest_codec.decode_infer_request(
        body, length, model_name="m", model_version="", max_bytes=MAX_BYTES
    )


def _grpc_case(message: pb.ModelInferRequest) -> Any:
    received = pb.ModelInferRequest.FromString(message.SerializeToString())
    return grpc_codec.decode_infer_request(received, max_bytes=MAX_BYTES)


PROTOCOLS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], Any]]] = {
    "json": (json_bodies(), _json_case),
    "binary": (binary_requests(), _binary_case),
    "grpc": (grpc_requests(), _grpc_case),
}


def fuzz(protocol: str, cases: int, run_seed: int) -> Run:
    """``cases`` cases of ``protocol`` from ``run_seed``; a failure is shrunk and kept as text."""
    strategy, decode = PROTOCOLS[protocol]
    run = Run(protocol)
    verdicts: Counter[str] = Counter()

    @seed(run_seed)
    @settings(max_examples=cases, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def property_holds(case: Any) -> None:
        verdicts[decoded_or_refused(lambda: decode(case))] += 1

    started = time.monotonic()
    try:
        property_holds()
    except Exception:
        run.failure = traceback.format_exc(limit=-8)
    run.seconds = time.monotonic() - started
    run.cases = sum(verdicts.values())
    run.verdicts = dict(verdicts.most_common())
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases per protocol (default 100,000)")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run (default: a new seed)")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), action="append", help="default: all")
    parser.add_argument("--out", type=Path, default=Path("fuzz.json"))
    args = parser.parse_args()
    run_seed = args.seed if args.seed is not None else random.randrange(2**32)
    runs = [fuzz(protocol, args.cases, run_seed) for protocol in args.protocol or PROTOCOLS]
    print(f"seed {run_seed}")
    print(f"{'protocol':<8} {'cases':>8} {'seconds':>8} {'cases/s':>8}  result")
    for run in runs:
        result = "FAILED" if run.failure else "0 crashes, 0 INTERNAL"
        print(
            f"{run.protocol:<8} {run.cases:>8} {run.seconds:>8.1f} {run.cases / run.seconds:>8.0f}  {result}"
        )
        print(f"         {run.verdicts}")
        if run.failure:
            print(run.failure)
    args.out.write_text(json.dumps({"seed": run_seed, "runs": [asdict(run) for run in runs]}, indent=2))
    if any(run.failure for run in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
