"""Benchmarks run by `hume bench <name>`.

Each benchmark is a module here exposing `Config` (a frozen dataclass with at least `json: bool`
and `output: str`), `run(config) -> dict` (the result, plain JSON data) and `table(result) -> str`
(a human-readable summary). `BENCHMARKS` maps the command-line names to the modules.
"""

BENCHMARKS: dict[str, str] = {
    "best-of-n": "hume.bench.best_of_n",
    "s1-tick": "hume.bench.s1_tick",
    "transport": "hume.bench.transport",
    "eval-throughput": "hume.bench.eval_throughput",
    "train-throughput": "hume.bench.train_throughput",
    "full-model": "hume.bench.full_model",
    "soak": "hume.bench.soak",
    "s2-batching": "hume.bench.s2_batching",
    "device-check": "hume.bench.device_check",
}
