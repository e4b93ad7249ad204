"""ocula serve vs the FastAPI + timm server a user would write, same run, same images, same load.

    .venv/bin/python benchmarks/serve_load.py /tmp/ocula-runs/grocery-phone ../shared/data/grocery \
        --requests 2000 --concurrency 1 8 --out benchmarks/results/serve_load.json

RUN is a run directory written by ``ocula train``; DATA a folder with test.txt
(``path, fine_id, coarse_id``), such as the Grocery Store dataset. Each server is started as its
own process on loopback, one at a time (never two loaded at once, so they never share the
cores): ``ocula serve RUN --port P`` (the venv's console script, all defaults), then
``benchmarks/baseline_server.py RUN --port P`` (``async def`` endpoint, work inline) and the same
with ``--sync`` (plain ``def`` endpoint on FastAPI's thread pool). The targets compare ocula with
the better baseline variant on each figure, and ocula at concurrency 8 with ONNX Runtime alone
(``inference_speed.alone``: a bare session on pre-cropped batches of ``--alone-batch``, measured
before any server starts).

For each server: wait for ``GET /ping``; classify 20 test images one by one (kept for the
correctness check: ocula's and the baseline's top-1 must agree); then for each concurrency C a
separate client process reads the test JPEGs into memory, warms up with ``--warmup`` requests,
and runs a bounded closed loop: C threads, each with its own keep-alive
``http.client.HTTPConnection``, send the next image (cycling through test.txt) to
``POST /invocations`` until N requests have been sent, timing each with ``time.perf_counter``.
Reported: requests/s (N / wall time of the loop), p50/p95/p99/max latency, non-200 answers and
transport errors (a run with errors says so), the server's CPU milliseconds per request during
the loop (server_cores_busy: its CPU seconds per wall second; the client's own CPU per request is
in the JSON too, as it shares the 2 cores), ocula's mean batch size and milliseconds per model call
from its /metrics, and each server's peak RSS (VmHWM of the server process and its children).
Servers are stopped with SIGINT, then killed, also on errors. The JSON keeps the command line,
date, CPU count and package versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from inference_speed import alone  # ONNX Runtime alone on pre-cropped batches: the engine's ceiling
from train_speed import read_manifest  # the grocery manifest reader, shared by the benchmarks

BASELINE = Path(__file__).with_name("baseline_server.py")
SERVERS = ("ocula", "baseline", "baseline-sync")
PROBE_IMAGES = 20
TARGETS = {"throughput_ratio_c8": 2.0, "p99_ratio_c8": 1.0, "p50_ratio_c1": 1.0, "c8_vs_onnxruntime_alone": 0.85}


# ---------------------------------------------------------------------------------------------
# the client: runs in its own process, so its Python (GIL, http.client) is not the server's


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": "image/jpeg"})
    response = conn.getresponse()
    return response.status, response.read()


def closed_loop(port: int, images: list[bytes], total: int, concurrency: int, offset: int = 0,
                connections: list[http.client.HTTPConnection] | None = None) -> dict:
    """``concurrency`` threads, one keep-alive connection each, send ``total`` requests in all."""
    connections = connections or [http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                                  for _ in range(concurrency)]
    lock, counter = threading.Lock(), iter(range(total))
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: list[list[str]] = [[] for _ in range(concurrency)]
    start = threading.Barrier(concurrency + 1)

    def worker(k: int) -> None:
        conn, mine, bad = connections[k], latencies[k], failures[k]
        start.wait()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = images[(offset + i) % len(images)]
            t0 = time.perf_counter()
            try:
                status, data = post(conn, body)
            except (OSError, http.client.HTTPException) as error:
                bad.append(f"{type(error).__name__}: {error}")
                conn.close()  # http.client reconnects on the next request
                continue
            mine.append(time.perf_counter() - t0)
            if status != 200:
                bad.append(f"HTTP {status}: {data[:200]!r}")

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    return {"wall": wall, "latencies": [x for xs in latencies for x in xs],
            "failures": [x for xs in failures for x in xs], "connections": connections}


def client(port: int, paths: list[str], total: int, concurrency: int, warmup: int, out) -> None:
    """The client process: images into memory, warm-up, then the timed loop; result on ``out``."""
    try:
        images = [Path(p).read_bytes() for p in paths]
        connections = None
        if warmup:
            connections = closed_loop(port, images, warmup, concurrency, offset=len(images) // 2)["connections"]
        before = os.times()
        run = closed_loop(port, images, total, concurrency, connections=connections)
        after = os.times()
        run["client_cpu_seconds"] = after.user + after.system - before.user - before.system
        for conn in run.pop("connections"):
            conn.close()
        out.send(run)
    except BaseException as error:  # noqa: BLE001 - reported by the parent
        out.send({"error": f"{type(error).__name__}: {error}"})
    finally:
        out.close()


def load(port: int, paths: list[str], total: int, concurrency: int, warmup: int) -> dict:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=client, args=(port, paths, total, concurrency, warmup, send))
    process.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        result = {"error": f"client process died (exit code {process.exitcode})"}
    process.join()
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


# ---------------------------------------------------------------------------------------------
# the servers


def free_port(start: int) -> int:
    for port in range(start, start + 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"no free port in {start}..{start + 199}")


def command_for(server: str, run: str, port: int) -> list[str]:
    if server == "ocula":
        return [str(Path(sys.executable).parent / "ocula"), "serve", run, "--port", str(port)]
    sync = ["--sync"] if server == "baseline-sync" else []
    return [sys.executable, str(BASELINE), run, "--port", str(port), *sync]


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return found


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the server process tree."""
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, name: str, run: str, port: int, log_dir: Path) -> None:
        self.name, self.port = name, port
        self.command = command_for(name, run, port)
        self.log = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float) -> dict:
        print("starting:", shlex.join(self.command), flush=True)
        began = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        while time.perf_counter() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/ping")
                response = conn.getresponse()
                body = response.read()
                conn.close()
                if response.status == 200:
                    ping = json.loads(body or b"{}")
                    return {"startup_seconds": round(time.perf_counter() - began, 2), "ping": ping}
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /ping within {timeout:.0f} s:\n{self.tail()}")

    def peak_rss_mb(self) -> float:
        return sum(status_kb(p, "VmHWM") for p in descendants(self.process.pid)) / 1024

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------
# one server, every concurrency


def ocula_metrics(port: int) -> dict[str, float]:
    """Batch-size and inference-time sums from ocula's /metrics ({} for servers without it)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
        conn.close()
    except (OSError, http.client.HTTPException, UnicodeDecodeError):
        return {}
    if response.status != 200:
        return {}
    wanted = ("ocula_batch_size_sum", "ocula_batch_size_count", "ocula_inference_seconds_sum")
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            found[name] = float(value)
    return found


def probe(port: int, rows: list[tuple[str, int]]) -> list[list[float]]:
    """Probabilities for the probe images, one request at a time."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    answers = []
    for path, _ in rows:
        status, data = post(conn, Path(path).read_bytes())
        if status != 200:
            raise RuntimeError(f"probe {path}: HTTP {status} {data[:200]!r}")
        answers.append(json.loads(data))
    conn.close()
    return answers


def summarise(name: str, concurrency: int, total: int, run: dict, cpu: float, batches: dict) -> dict:
    ms = np.array(run["latencies"]) * 1000
    failures = run["failures"]
    p50, p95, p99 = np.percentile(ms, [50, 95, 99]) if len(ms) else (float("nan"),) * 3
    model_calls = batches.get("ocula_batch_size_count", 0)
    extra = {"mean_batch_size": round(batches["ocula_batch_size_sum"] / model_calls, 2),
             "ms_per_model_call": round(batches["ocula_inference_seconds_sum"] / model_calls * 1000, 2),
             "model_calls": int(model_calls)} if model_calls else {}
    return {
        "server": name, "concurrency": concurrency, "requests": total,
        "requests_per_second": round(total / run["wall"], 2), "wall_seconds": round(run["wall"], 3),
        "p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
        "max_ms": round(float(ms.max()), 2) if len(ms) else None,
        "mean_ms": round(float(ms.mean()), 2) if len(ms) else None,
        "errors": len(failures), "error_examples": sorted(set(failures))[:5],
        "server_cpu_ms_per_request": round(cpu / total * 1000, 2),
        "server_cores_busy": round(cpu / run["wall"], 2),
        "client_cpu_ms_per_request": round(run["client_cpu_seconds"] / total * 1000, 2),
        **extra,  # ocula only, from its /metrics: includes the warm-up requests
    }


def bench(server: Server, paths: list[str], probe_rows, args) -> tuple[list[dict], dict]:
    info = server.start(args.startup_timeout)
    print(f"{server.name}: ready in {info['startup_seconds']} s, ping {json.dumps(info['ping'])}", flush=True)
    info["probabilities"] = probe(server.port, probe_rows)
    rows = []
    for concurrency in args.concurrency:
        before, metrics_before = cpu_seconds(server.process.pid), ocula_metrics(server.port)
        run = load(server.port, paths, args.requests, concurrency, args.warmup)
        # the CPU delta includes the warm-up requests; subtract their share
        cpu = (cpu_seconds(server.process.pid) - before) * args.requests / (args.requests + args.warmup)
        batches = {k: v - metrics_before.get(k, 0) for k, v in ocula_metrics(server.port).items()}
        rows.append(summarise(server.name, concurrency, args.requests, run, cpu, batches))
        print(json.dumps(rows[-1]), flush=True)
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} died during the load:\n{server.tail()}")
    info["peak_rss_mb"] = round(server.peak_rss_mb())
    for row in rows:
        row["peak_rss_mb"] = info["peak_rss_mb"]
    return rows, info


def agreement(a: list[list[float]], b: list[list[float]], labels: list[int]) -> dict:
    a, b = np.array(a), np.array(b)
    return {
        "images": len(labels),
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
        "max_abs_probability_difference": float(np.abs(a - b).max()),
        "top1_accuracy": {"ocula": float((a.argmax(1) == np.array(labels)).mean()),
                          "baseline": float((b.argmax(1) == np.array(labels)).mean())},
    }


def ratios(results: list[dict], ceiling: dict | None = None) -> dict:
    """ocula against the better baseline variant on each figure, and against ONNX Runtime alone."""
    def pick(concurrency: int) -> tuple[dict | None, list[dict]]:
        rows = [r for r in results if r["concurrency"] == concurrency]
        mine = next((r for r in rows if r["server"] == "ocula"), None)
        return mine, [r for r in rows if r["server"] != "ocula"]

    out = {}
    ocula8, base8 = pick(8)
    if ocula8 and base8:
        best = max(base8, key=lambda r: r["requests_per_second"])
        out["throughput_ratio_c8"] = {"value": ocula8["requests_per_second"] / best["requests_per_second"],
                                      "against": best["server"], "target": ">= 2.0"}
        best = min(base8, key=lambda r: r["p99_ms"])
        out["p99_ratio_c8"] = {"value": ocula8["p99_ms"] / best["p99_ms"], "against": best["server"],
                               "target": "<= 1.0"}
    if ocula8 and ceiling:
        out["c8_vs_onnxruntime_alone"] = {"value": ocula8["requests_per_second"] / ceiling["images_per_second"],
                                          "against": f"onnxruntime alone, batch {ceiling['batch_size']}",
                                          "target": ">= 0.85"}
    ocula1, base1 = pick(1)
    if ocula1 and base1:
        best = min(base1, key=lambda r: r["p50_ms"])
        out["p50_ratio_c1"] = {"value": ocula1["p50_ms"] / best["p50_ms"], "against": best["server"],
                               "target": "<= 1.0"}
    for name, ratio in out.items():
        ratio["value"] = round(ratio["value"], 3)
        limit = TARGETS[name]
        ratio["met"] = ratio["value"] >= limit if name.startswith(("throughput", "c8")) else ratio["value"] <= limit
    return out


def versions() -> dict:
    found = {"python": platform.python_version()}
    for package in ("ocula", "torch", "torchvision", "timm", "onnxruntime", "fastapi", "uvicorn", "pillow", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run directory written by `ocula train`")
    parser.add_argument("data", help="a folder with test.txt (path, fine_id, coarse_id)")
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per server and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests before each timed loop")
    parser.add_argument("--port-base", type=int, default=8600, help="first port tried; busy ports are skipped")
    parser.add_argument("--startup-timeout", type=float, default=300)
    parser.add_argument("--alone-batch", type=int, default=16, help="ONNX Runtime alone: the server's --max-batch")
    parser.add_argument("--out", default="benchmarks/results/serve_load.json")
    args = parser.parse_args()

    rows = read_manifest(Path(args.data), "test.txt")
    paths = [path for path, _ in rows]
    step = max(1, len(rows) // PROBE_IMAGES)
    probe_rows = rows[::step][:PROBE_IMAGES]
    log_dir = Path(tempfile.mkdtemp(prefix="ocula-serve-load-"))
    ceiling = None
    if "ocula" in args.servers:  # measured before any server starts, so nothing shares the cores
        ceiling = alone(Path(args.run), paths, args.alone_batch, 512)
        print(f"onnxruntime alone: {ceiling['images_per_second']} images/s at batch {args.alone_batch}", flush=True)
    results, servers, port = [], {}, args.port_base
    for name in args.servers:
        port = free_port(port)
        server = Server(name, args.run, port, log_dir)
        port += 1
        try:
            server_rows, info = bench(server, paths, probe_rows, args)
        except BaseException:
            print(server.tail(), file=sys.stderr)
            raise
        finally:
            server.stop()
        results += server_rows
        servers[name] = {"command": shlex.join(server.command), **info}

    checks = {}
    if "ocula" in servers:
        for name in servers:
            if name != "ocula":
                checks[f"ocula_vs_{name}"] = agreement(servers["ocula"]["probabilities"],
                                                       servers[name]["probabilities"],
                                                       [label for _, label in probe_rows])
    targets = ratios(results, ceiling)
    for info in servers.values():
        info.pop("probabilities")
    report = {
        "command": shlex.join([Path(sys.executable).as_posix(), *sys.argv]),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu": cpu_model(),
                    "platform": platform.platform()},
        "versions": versions(), "requests": args.requests, "warmup": args.warmup, "data": args.data,
        "run": args.run, "cwd": os.getcwd(), "onnxruntime_alone": ceiling, "servers": servers, "results": results, "correctness": checks,
        "targets": targets,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))

    print(f"\n{args.requests} requests per row; raw results: {args.out}\n")
    print("| server | concurrency | requests/s | p50 ms | p95 ms | p99 ms | max ms | errors | "
          "server CPU ms/request | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    def ms(value: float | None) -> str:
        return "-" if value is None or value != value else f"{value:.1f}"

    for r in results:
        print(f"| {r['server']} | {r['concurrency']} | {r['requests_per_second']:.1f} | {ms(r['p50_ms'])} | "
              f"{ms(r['p95_ms'])} | {ms(r['p99_ms'])} | {ms(r['max_ms'])} | {r['errors']} | "
              f"{r['server_cpu_ms_per_request']:.1f} | {r['peak_rss_mb']:,} MB |")
    print()
    for name, ratio in targets.items():
        print(f"{name}: {ratio['value']:.2f} vs {ratio['against']} (target {ratio['target']}): "
              f"{'met' if ratio['met'] else 'NOT MET'}")
    for name, check in checks.items():
        print(f"{name}: top-1 agreement {check['top1_agreement']:.0%} on {check['images']} images, "
              f"max |p difference| {check['max_abs_probability_difference']:.4f}")
    errors = sum(r["errors"] for r in results)
    if errors:
        print(f"WARNING: {errors} requests failed; see error_examples in {args.out}")


if __name__ == "__main__":
    main()
