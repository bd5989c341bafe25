"""The streaming benchmark, on one machine (`make bench`, or `python -m bench.run --help`).

Starts three processes besides this one, each with its own CPU so they can be measured apart:

* the Gemini stand-in (`bench.standin`): first chunk after `--first-delay`, then `--chunks - 1`
  more every `--interval`;
* the server, one worker, DEBUG off, the gemini provider pointed at the stand-in, PostgreSQL
  database `--db-name` (dropped, created and migrated here), Django's pool capped at
  `--pool-max`. `--server-cmd deployed` (the default) is the Dockerfile's command: uvicorn's
  defaults (auto loop and http, log level info, access log on) with `--proxy-headers
  --timeout-graceful-shutdown 20`; `tuned` is the earlier `--loop uvloop --http httptools
  --backlog 4096` with `--log-level`/`--access-log` as given. `--server-tree` runs the server
  (and its migrations and the seeding) from another checkout, e.g. a `git worktree` of another
  commit, with the same venv: an A/B in one sitting;
* the load generator (`bench.loadgen`), once per measurement.

For each case (`--cases`: `new` starts a conversation; a number N continues one that already
holds N messages, seeded by `bench/seed.py`, reset to N before each measurement) and each level
L: L concurrent workers, each running `--turns` full chat turns back to back (`POST
/api/chat/stream/`, read to `data: [DONE]`) as one of `--users` users, and the same load straight
against the stand-in as the baseline (what a backend that adds nothing would give). Then
optionally the `parallel` agent. Results: JSON in bench/results/, a markdown table per case on
stdout. `--py-spy PATH` samples the server during one measurement (`--py-spy-at CASE:LEVEL`).

Every process started here is stopped on exit, Ctrl-C and failure."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import psycopg

from tests.live_server import free_port

BASE_DIR = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PY = sys.executable
MODEL = "gemini-2.5-flash"
SECRET = "bench-secret-key-not-for-production-0123456789abcdefghijklmnop"


# --- small helpers ---------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 1)


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the children
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- processes -------------------------------------------------------------------------------
class Processes:
    """Every child process, stopped (TERM, then KILL) in reverse order on close."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("cwd", BASE_DIR)
        process = subprocess.Popen(args, **kwargs)
        self.children.append((name, process))
        return process

    def stop(self, process: subprocess.Popen, sig: int = signal.SIGTERM, wait_s: float = 15):
        if process.poll() is None:
            try:
                process.send_signal(sig)
                process.wait(wait_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        for name, process in reversed(self.children):
            if process.poll() is None:
                log(f"stopping {name} (pid {process.pid})")
                if process.stdin and not process.stdin.closed:
                    try:
                        process.stdin.close()
                    except OSError:
                        pass
                self.stop(process, signal.SIGINT if name == "server" else signal.SIGTERM)
        self.children.clear()


def server_env(args, db_url: str, standin_url: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="chatbackend.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=SECRET,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DATABASE_URL=db_url,
        DB_POOL_MAX_SIZE=str(args.pool_max),
        DJANGO_MEDIA_ROOT=args.media_root,
        AI_PROVIDER="gemini",
        GEMINI_API_KEY="bench-key",
        GEMINI_BASE_URL=standin_url,
        GEMINI_MODEL=MODEL,
        CHAT_RATE_LIMIT="0",
        AGENT_RATE_LIMIT="0",
        AGENT_CACHE_TTL_S="0",
        JWT_ACCESS_MINUTES="240",
        LOG_LEVEL=args.log_level,
        PYTHONUNBUFFERED="1",
        # The server tree's code, whichever directory the tool runs from (bench/seed.py).
        PYTHONPATH=str(args.server_tree),
    )
    for assignment in args.server_env:
        name, _, value = assignment.partition("=")
        env[name] = value
    return env


def create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(admin_url: str, name: str) -> None:
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error as exc:
        log(f"could not drop {name}: {exc}")


def start_standin(procs: Processes, args) -> str:
    process = procs.start(
        "stand-in",
        [
            PY,
            "-m",
            "bench.standin",
            f"--first-delay={args.first_delay}",
            f"--interval={args.interval}",
            f"--chunks={args.chunks}",
            f"--json-delay={args.json_delay}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline().strip()
    if not line.startswith("PORT "):
        raise RuntimeError(f"the stand-in did not start: {line!r}")
    return f"http://127.0.0.1:{line.split()[1]}"


def server_command(args, port: int) -> list[str]:
    """uvicorn as the Dockerfile's CMD runs it (`deployed`: one worker here, bound to 127.0.0.1),
    or with the flags this benchmark used before (`tuned`)."""
    uvicorn = [PY, "-m", "uvicorn", "chatbackend.asgi:application"]
    if args.server_cmd == "deployed":
        return [
            *uvicorn,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--timeout-graceful-shutdown",
            "20",
            "--proxy-headers",
        ]
    tuned = [
        *uvicorn,
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        "--loop=uvloop",
        "--http=httptools",
        "--backlog=4096",
        "--timeout-graceful-shutdown=5",
        "--log-level=warning" if args.log_level == "WARNING" else "--log-level=info",
    ]
    if not args.access_log:
        tuned.append("--no-access-log")
    return tuned


def start_server(procs: Processes, args, env: dict[str, str], log_path: Path):
    port = free_port()
    uvicorn = server_command(args, port)
    profile_out = None
    if args.profile == "pyinstrument":  # the main thread only, from start-up to the end
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        profile_out = RESULTS_DIR / f"profile-{stamp}.pyinstrument.txt"
        uvicorn = [PY, "-m", "pyinstrument", "-r", "text", "-o", str(profile_out), *uvicorn[1:]]
    log_file = open(log_path, "w")
    process = procs.start(
        "server",
        uvicorn,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=args.server_tree,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"uvicorn exited at start-up; see {log_path}")
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not answer /healthz; see {log_path}")
            time.sleep(0.1)  # the interval between readiness probes
    # With a profiler in front, the server is its child.
    server = psutil.Process(process.pid)
    if args.profile == "pyinstrument":
        pythons = [c for c in server.children(recursive=True) if "python" in c.name().lower()]
        server = pythons[0] if pythons else server
    return process, server, url, port, profile_out, uvicorn


# --- measuring -------------------------------------------------------------------------------
class Sampler(threading.Thread):
    """Samples the server's RSS and the bench database's PostgreSQL connections."""

    def __init__(self, server: psutil.Process, admin_url: str, db_name: str, every_s=0.05):
        super().__init__(daemon=True)
        self.server, self.admin_url, self.db_name, self.every_s = (
            server,
            admin_url,
            db_name,
            every_s,
        )
        self.peak_rss = 0
        self.peak_pg = 0
        self._halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._halt.is_set():
                try:
                    self.peak_rss = max(self.peak_rss, self.server.memory_info().rss)
                except psutil.Error:
                    return
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self.db_name,)
                ).fetchone()
                self.peak_pg = max(self.peak_pg, count)
                self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def pg_connections(admin_url: str, db_name: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db_name,)
        ).fetchone()[0]


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def cpu_split(process: psutil.Process) -> tuple[float, float, float, int, int]:
    """User and system CPU seconds, the event loop's thread's CPU seconds, voluntary and
    involuntary context switches: where the server's CPU goes besides Python (system calls,
    waking threads)."""
    times = process.cpu_times()
    switches = process.num_ctx_switches()
    main = next((t for t in process.threads() if t.id == process.pid), None)
    main_cpu = main.user_time + main.system_time if main is not None else 0.0
    return times.user, times.system, main_cpu, switches.voluntary, switches.involuntary


def run_loadgen(job: dict, timeout_s: float) -> dict:
    completed = subprocess.run(
        [PY, "-m", "bench.loadgen"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
        timeout=timeout_s,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout)


def summarize(result: dict) -> dict:
    turns = result["turns"]
    ok = [t for t in turns if t["ok"]]
    errors: dict[str, int] = {}
    for t in turns:
        if not t["ok"]:
            key = (t["error"] or "?")[:120]
            errors[key] = errors.get(key, 0) + 1
    ttft = [t["ttft_s"] for t in ok]
    gaps = [g for t in ok for g in t["gaps_s"]]
    return {
        "turns": len(turns),
        "completed": len(ok),
        "failed": len(turns) - len(ok),
        "errors": errors,
        "wall_s": round(result["wall_s"], 3),
        "turns_per_s": round(len(ok) / result["wall_s"], 1) if result["wall_s"] else None,
        "ttft_ms": {q: ms(percentile(ttft, q)) for q in (50, 90, 99)},
        "ttft_max_ms": ms(max(ttft)) if ttft else None,
        "gap_ms": {q: ms(percentile(gaps, q)) for q in (50, 90, 99)},
        "gap_max_ms": ms(max(gaps)) if gaps else None,
        "tokens_per_turn": round(sum(t["tokens"] for t in ok) / len(ok), 1) if ok else None,
    }


def chat_job(
    args, port: int, tokens: list[str], level: int, *, mode: str, conversations=None
) -> dict:
    """`conversations`: [conversation id, user index], `--turns` per worker (each turn continues a
    conversation of its own, as its user), or None (each turn starts a conversation, as the
    `--users` users in turn)."""
    if mode == "backend":
        path = "/api/chat/stream/"
        requests = []
        for i in range(level):
            body = {"message": f"Benchmark question {i}: how do streams work?"}
            user = i % args.users
            if conversations is None:
                requests.append(
                    {"headers": {"Authorization": f"Bearer {tokens[user]}"}, "body": body}
                )
                continue
            mine = conversations[i * args.turns : (i + 1) * args.turns]
            requests.append(
                {
                    "turns": [
                        {
                            "headers": {"Authorization": f"Bearer {tokens[user]}"},
                            "body": body | {"conversation_id": conversation_id},
                        }
                        for conversation_id, user in mine
                    ]
                }
            )
    else:
        path = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
        requests = [
            {
                "headers": {"x-goog-api-key": "bench-key"},
                "body": {
                    "contents": [
                        {"role": "user", "parts": [{"text": f"Benchmark question {i}: how?"}]}
                    ]
                },
            }
            for i in range(level)
        ]
    return {
        "host": "127.0.0.1",
        "port": port,
        "mode": mode,
        "path": path,
        "requests": requests,
        "turns_per_worker": args.turns,
        "timeout_s": args.turn_timeout,
        "deadline_s": args.level_deadline,
    }


def start_py_spy(args, pid: int, out: Path) -> subprocess.Popen:
    """py-spy sampling the server (100 Hz) while one level runs: collapsed stacks
    (speedscope.app and flamegraph.pl read them), summarised by `bench.profile_summary`. With
    `--gil` (the default here) only the thread holding the GIL is sampled: py-spy's idle
    detection counts threads waiting on a lock, a queue or a socket as running on this VM, so
    without it the database threads' waits swamp the profile. A sample is then ~10 ms of Python
    running; C work done with the GIL released (libpq's I/O, the kernel's) is not seen. Its own
    CPU is not the server's, but sampling pauses the server briefly, so CPU figures of a
    profiled measurement are not the benchmark's."""
    log(f"py-spy -> {out}")
    return subprocess.Popen(
        [
            str(Path(PY).with_name("py-spy")),
            "record",
            f"--pid={pid}",
            "--rate=100",
            "--format=raw",
            "--threads",
            *(["--gil"] if args.py_spy_gil else []),
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def reset_conversations(db_url: str, conversations: list[list], history: int) -> None:
    """Back to `history` messages each: the replies a measurement added go, so every case keeps
    its length from one level to the next."""
    ids = [c[0] for c in conversations]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM chat_message WHERE conversation_id = ANY(%s::uuid[]) AND position >= %s",
            (ids, history),
        )
        conn.execute(
            "UPDATE chat_conversation SET next_position = %s, summary = '', "
            "summarized_through = 0 WHERE id = ANY(%s::uuid[])",
            (history, ids),
        )


def calibration_ms() -> float:
    """CPU time of a fixed piece of pure-Python work (dicts, strings, JSON), the best of three,
    taken just before a measurement: 17-37 ms on this machine while other sessions ran. The same
    work takes more CPU time when other processes share the cores (caches, the other
    hyperthread), and so does a turn: it says how disturbed the moment was."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        rows = [
            {"id": i, "text": f"message {i} " * 8, "parts": [{"type": "text"}]} for i in range(6000)
        ]
        encoded = json.dumps(rows)
        decoded = json.loads(encoded)
        total = sum(len(r["text"]) for r in decoded if r["id"] % 3)
        "".join(str(total) for _ in range(20000))
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def baseline_for(args, ctx: dict, level: int) -> dict:
    """The same load straight against the stand-in: once per level, shared by the cases."""
    if level not in ctx["baselines"]:
        standin_port = int(ctx["standin_url"].rsplit(":", 1)[1])
        log(f"level {level}: baseline (straight to the stand-in)")
        ctx["baselines"][level] = summarize(
            run_loadgen(
                chat_job(args, standin_port, ctx["tokens"], level, mode="standin"),
                args.level_deadline + args.turn_timeout + 30,
            )
        )
        time.sleep(args.settle)
    return ctx["baselines"][level]


def measure_level(args, ctx: dict, level: int, case: str = "new") -> dict:
    baseline = baseline_for(args, ctx, level)
    conversations = None
    if case != "new":
        conversations = ctx["seeded"][case][: level * args.turns]
        if len(conversations) < level * args.turns:
            raise RuntimeError(f"case {case}: {len(conversations)} conversations for {level}")
        reset_conversations(ctx["db_url"], conversations, int(case))
        time.sleep(args.settle)
    log(f"case {case}, level {level}: through the backend (load average {load_average()})")
    server: psutil.Process = ctx["server"]
    rss_before = server.memory_info().rss
    load_before = load_average()
    calibration = calibration_ms()
    sampler = Sampler(server, ctx["admin_url"], args.db_name)
    sampler.start()
    spy = None
    spy_out = None
    if args.profile == "py-spy":
        spy_out = RESULTS_DIR / f"profile-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{level}.txt"
    elif args.py_spy and (case, level) == args.py_spy_at:
        spy_out = Path(args.py_spy)
    if spy_out is not None:
        spy = start_py_spy(args, server.pid, spy_out)
        time.sleep(1)  # py-spy attaches before the load starts
    cpu0 = cpu_seconds(server)
    split0 = cpu_split(server)
    try:
        raw = run_loadgen(
            chat_job(
                args, ctx["port"], ctx["tokens"], level, mode="backend", conversations=conversations
            ),
            args.level_deadline + args.turn_timeout + 30,
        )
    finally:
        cpu1 = cpu_seconds(server)
        split1 = cpu_split(server)
        sampler.stop()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    load_after = load_average()
    backend = summarize(raw)
    time.sleep(args.settle)
    idle = ctx["idle_rss"]
    cpu = cpu1 - cpu0
    row = {
        "case": case,
        "level": level,
        "history": None if case == "new" else int(case),
        "backend": backend,
        "baseline": baseline,
        "added_ttft_ms": {
            q: diff(backend["ttft_ms"][q], baseline["ttft_ms"][q]) for q in (50, 90, 99)
        },
        "added_gap_ms": {
            q: diff(backend["gap_ms"][q], baseline["gap_ms"][q]) for q in (50, 90, 99)
        },
        "server_cpu_s": round(cpu, 3),
        "cpu_ms_per_turn": round(cpu / backend["completed"] * 1000, 2)
        if backend["completed"]
        else None,
        "cpu_utilisation": round(cpu / backend["wall_s"], 2) if backend["wall_s"] else None,
        # per completed turn: user ms, system ms, event-loop thread ms, voluntary and
        # involuntary context switches
        "cpu_split_per_turn": [
            round((b - a) / max(backend["completed"], 1) * (1000 if i < 3 else 1), 2)
            for i, (a, b) in enumerate(zip(split0, split1, strict=True))
        ],
        "rss_before_mb": round(rss_before / 2**20, 1),
        "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
        "kb_per_stream": round((sampler.peak_rss - idle) / level / 1024, 1),
        "peak_pg_connections": sampler.peak_pg,
        "load_average": f"{load_before} -> {load_after}",
        "calibration_ms": calibration,
        "profiled": spy is not None,
    }
    if spy_out is not None and spy_out.exists():
        from bench.profile_summary import summary

        text = summary(spy_out, top=40, cpu_ms_per_turn=row["cpu_ms_per_turn"])
        summary_path = spy_out.with_name(spy_out.name + ".summary.txt")
        summary_path.write_text(text)
        row["profile"] = str(spy_out)
        row["profile_summary"] = str(summary_path)
        log(f"profile {spy_out}, summary {summary_path}")
    log(
        f"case {case}, level {level}: {backend['completed']}/{backend['turns']} ok, "
        f"ttft p50 {backend['ttft_ms'][50]} ms (baseline {baseline['ttft_ms'][50]}), "
        f"cpu {row['cpu_ms_per_turn']} ms/turn, pg {sampler.peak_pg}, load {row['load_average']}, "
        f"calibration {calibration} ms"
    )
    if backend["errors"]:
        log(f"case {case}, level {level}: errors {backend['errors']}")
    if baseline["failed"]:
        log(f"level {level}: BASELINE errors {baseline['errors']}")
    return row


def measure_parallel_agent(args, ctx: dict) -> dict | None:
    if not (BASE_DIR / "agents" / "patterns" / "parallel.py").exists():
        log("agents/patterns/parallel.py not there: skipping the agent benchmark")
        return None
    import asyncio

    async def one(client: httpx.AsyncClient, i: int) -> dict:
        started = time.perf_counter()
        response = await client.post(
            f"{ctx['url']}/api/agents/parallel/",
            json={"code": f"def f{i}(x):\n    return eval(x)  # review {i}\n"},
            headers={
                "Authorization": f"Bearer {ctx['tokens'][i]}",
                "Accept": "application/json",
            },
        )
        wall = time.perf_counter() - started
        if response.status_code != 200:
            return {"ok": False, "error": f"HTTP {response.status_code}: {response.text[:200]}"}
        run = response.json()
        steps = {s["name"]: s for s in run.get("steps") or []}

        def duration(step: dict) -> float:
            return step.get("durationMs", step.get("duration_ms")) or 0

        reviews = [
            duration(steps[n])
            for n in ("SecurityReview", "PerformanceReview", "MaintainabilityReview")
            if n in steps
        ]
        return {
            "ok": run.get("status") == "complete" and len(reviews) == 3,
            "error": run.get("error") or None,
            "wall_ms": round(wall * 1000, 1),
            "reviews_ms": reviews,
            "summary_ms": duration(steps.get("ReviewSummary", {})),
        }

    async def level(concurrency: int) -> dict:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            started = time.perf_counter()
            runs = await asyncio.gather(*(one(client, i) for i in range(concurrency)))
            wall = time.perf_counter() - started
        ok = [r for r in runs if r["ok"]]
        sums = [sum(r["reviews_ms"]) for r in ok]
        maxes = [max(r["reviews_ms"]) for r in ok]
        walls = [r["wall_ms"] for r in ok]
        return {
            "concurrency": concurrency,
            "runs": len(runs),
            "completed": len(ok),
            "failed": len(runs) - len(ok),
            "errors": [r.get("error") for r in runs if not r["ok"]][:5],
            "batch_wall_s": round(wall, 2),
            "wall_ms_p50": percentile(walls, 50),
            "reviews_sum_ms_p50": percentile(sums, 50),
            "reviews_max_ms_p50": percentile(maxes, 50),
            "summary_ms_p50": percentile([r["summary_ms"] for r in ok], 50),
            "wall_minus_max_minus_summary_ms_p50": percentile(
                [r["wall_ms"] - max(r["reviews_ms"]) - r["summary_ms"] for r in ok], 50
            ),
        }

    results = []
    for concurrency in args.agent_levels:
        log(f"parallel agent: {concurrency} concurrent runs")
        results.append(asyncio.run(level(concurrency)))
        log(f"parallel agent: {results[-1]}")
    return {"json_delay_s": args.json_delay, "levels": results}


# --- report ----------------------------------------------------------------------------------
def case_title(case: str, args) -> str:
    if case == "new":
        return "new conversation (first turn)"
    return f"continued conversation with {case} earlier messages"


def table(rows: list[dict]) -> str:
    head = (
        "| streams | turns ok / failed | server CPU ms / turn | TTFT p50 / p99 (ms) | "
        "baseline TTFT p50 / p99 | added TTFT p50 / p99 | added gap p50 / p99 | "
        "turns/s (baseline) | peak RSS MB | KB / stream | peak PG conns | load avg (1/5/15 min) | "
        "calibration ms |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    )
    lines = [head]
    for r in rows:
        b, base = r["backend"], r["baseline"]
        flag = " (profiled)" if r.get("profiled") else ""
        lines.append(
            f"| {r['level']} | {b['completed']} / {b['failed']} | {r['cpu_ms_per_turn']}{flag} | "
            f"{b['ttft_ms'][50]} / {b['ttft_ms'][99]} | "
            f"{base['ttft_ms'][50]} / {base['ttft_ms'][99]} | "
            f"{r['added_ttft_ms'][50]} / {r['added_ttft_ms'][99]} | "
            f"{r['added_gap_ms'][50]} / {r['added_gap_ms'][99]} | "
            f"{b['turns_per_s']} ({base['turns_per_s']}) | {r['peak_rss_mb']} | "
            f"{r['kb_per_stream']} | {r['peak_pg_connections']} | "
            f"{r.get('load_average', '')} | {r.get('calibration_ms', '')} |"
        )
    return "\n".join(lines)


def tables(rows: list[dict], args) -> str:
    out = []
    for case in dict.fromkeys(r.get("case", "new") for r in rows):
        out.append(f"{case_title(case, args)}:\n")
        out.append(table([r for r in rows if r.get("case", "new") == case]) + "\n")
    return "\n".join(out)


def agent_table(agent: dict | None) -> str:
    if not agent:
        return ""
    lines = [
        "| concurrent runs | ok / failed | wall p50 (ms) | sum of reviews p50 | "
        "slowest review p50 | summary step p50 | wall - slowest - summary p50 |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in agent["levels"]:
        lines.append(
            f"| {r['concurrency']} | {r['completed']} / {r['failed']} | {r['wall_ms_p50']} | "
            f"{r['reviews_sum_ms_p50']} | {r['reviews_max_ms_p50']} | {r['summary_ms_p50']} | "
            f"{r['wall_minus_max_minus_summary_ms_p50']} |"
        )
    return "\n".join(lines)


def machine() -> dict:
    try:
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres") as conn:
            pg = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        pg = "?"
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "postgresql": pg,
        "platform": platform.platform(),
    }


def tool(name: str) -> list[str]:
    """A script of this bench/ run in the server tree (its cwd, first on sys.path): that tree's
    models, this tree's script, whichever commit the server runs."""
    run_path = (
        "import runpy, sys; del sys.argv[0]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return [PY, "-c", run_path, str(BASE_DIR / "bench" / name)]


def git_commit(tree: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", tree, "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()[:100]
    except (OSError, subprocess.CalledProcessError):
        return "?"


# --- main ------------------------------------------------------------------------------------
def _interrupt(*_):
    raise KeyboardInterrupt


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--levels", default="10,100,200,500,1000", help="concurrent streams per level")
    p.add_argument(
        "--cases",
        default="new,5,20,50",
        help="new (a first turn) and/or N (a turn continuing a conversation of N messages)",
    )
    p.add_argument("--users", type=int, default=10, help="the chat turns' users, in turn")
    p.add_argument("--files-every", type=int, default=5, help="seeding: a file every k-th user msg")
    p.add_argument(
        "--server-cmd",
        choices=["deployed", "tuned"],
        default="deployed",
        help="deployed: the Dockerfile's uvicorn flags; tuned: uvloop, httptools, backlog 4096, "
        "--log-level/--access-log as given",
    )
    p.add_argument(
        "--server-tree",
        default=str(BASE_DIR),
        help="run the server (migrations, seeding) from this checkout: A/B against another commit",
    )
    p.add_argument("--py-spy", default="", metavar="PATH", help="py-spy collapsed stacks to PATH")
    p.add_argument(
        "--py-spy-all-threads",
        dest="py_spy_gil",
        action="store_false",
        help="py-spy: every thread it thinks is running, not only the GIL's holder",
    )
    p.add_argument(
        "--py-spy-at",
        default="",
        metavar="CASE:LEVEL",
        help="the measurement --py-spy samples (default: the last case at the largest level)",
    )
    p.add_argument("--turns", type=int, default=3, help="turns per concurrent stream, per level")
    p.add_argument("--quick", action="store_true", help="1 turn per stream, agents at 1 and 10")
    p.add_argument("--first-delay", type=float, default=0.15, help="stand-in: s to first chunk")
    p.add_argument("--interval", type=float, default=0.03, help="stand-in: s between chunks")
    p.add_argument("--chunks", type=int, default=20, help="stand-in: chunks per reply")
    p.add_argument("--json-delay", type=float, default=0.4, help="stand-in: s per agent step")
    p.add_argument("--agent-levels", default="1,10,50", help="parallel-agent concurrency")
    p.add_argument("--no-agents", action="store_true")
    p.add_argument("--pool-max", type=int, default=10, help="DB_POOL_MAX_SIZE")
    p.add_argument("--db-name", default="bench_run")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="server, no db")
    p.add_argument("--keep-db", action="store_true", help="leave the bench database behind")
    p.add_argument("--turn-timeout", type=float, default=60)
    p.add_argument("--level-deadline", type=float, default=120, help="no new turns after this")
    p.add_argument("--settle", type=float, default=1.0, help="s of quiet between measurements")
    p.add_argument("--profile", choices=["py-spy", "pyinstrument"], default=None)
    p.add_argument("--log-level", default="INFO", choices=["INFO", "WARNING"])
    p.add_argument("--access-log", action="store_true", help="tuned: uvicorn's access log on")
    p.add_argument(
        "--server-env", action="append", default=[], help="NAME=value for the server (A/B runs)"
    )
    p.add_argument("--label", default="", help="a name for this run in the results file")
    args = p.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    args.agent_levels = [int(x) for x in args.agent_levels.split(",") if x.strip()]
    if args.quick:
        args.turns = 1
        args.agent_levels = [1, 10]
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in args.cases:
        if case != "new" and not case.isdigit():
            p.error(f"--cases: {case!r} is neither 'new' nor a number of messages")
    if args.py_spy_at:
        case, _, level = args.py_spy_at.partition(":")
        args.py_spy_at = (case, int(level))
    else:
        args.py_spy_at = (args.cases[-1], max(args.levels))
    args.server_tree = str(Path(args.server_tree).resolve())
    args.media_root = ""
    return args


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:] + shlex.split(os.environ.get("BENCH_ARGS", ""))
    args = parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    nofile = raise_open_files_limit()
    admin_url = f"{args.pg}/postgres"
    db_url = f"{args.pg}/{args.db_name}"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    procs = Processes()
    media = tempfile.TemporaryDirectory(prefix="bench-media-")
    args.media_root = media.name
    # Ctrl-C reaches the children too (same process group); SIGTERM to this process stops them.
    signal.signal(signal.SIGTERM, _interrupt)
    report: dict = {
        "label": args.label,
        "started": stamp,
        "machine": machine(),
        "open_files_limit": nofile,
        "options": {k: v for k, v in vars(args).items()},
        "command": " ".join([Path(PY).name, "-m", "bench.run", *argv]),
        "server_tree": args.server_tree,
        "server_commit": git_commit(args.server_tree),
    }
    try:
        log(f"database {args.db_name}: drop, create, migrate")
        create_database(admin_url, args.db_name)
        standin_url = start_standin(procs, args)
        log(f"stand-in at {standin_url}")
        env = server_env(args, db_url, standin_url)
        subprocess.run(
            [PY, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=args.server_tree,
            env=env,
            check=True,
        )
        users = max([*args.levels, *args.agent_levels, args.users, 10])
        log(f"creating {users} users and tokens")
        tokens = json.loads(
            subprocess.run(
                [*tool("users.py"), str(users)],
                cwd=args.server_tree,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        seeded = {}
        histories = [c for c in args.cases if c != "new"]
        if histories:
            log(
                f"seeding {max(args.levels) * args.turns} conversations of "
                f"{', '.join(histories)} messages over {args.users} users"
            )
            started = time.monotonic()
            seeded = json.loads(
                subprocess.run(
                    [
                        *tool("seed.py"),
                        f"--users={args.users}",
                        f"--conversations={max(args.levels) * args.turns}",
                        f"--history={','.join(histories)}",
                        f"--files-every={args.files_every}",
                    ],
                    cwd=args.server_tree,
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            log(f"seeded in {time.monotonic() - started:.1f} s")
        log_path = RESULTS_DIR / f"server-{stamp}.log"
        process, server, url, port, profile_out, command = start_server(procs, args, env, log_path)
        report["server_command"] = shlex.join(command)
        log(f"server at {url} (pid {server.pid}), log {log_path}")
        log(f"server command ({args.server_cmd}, cwd {args.server_tree}): {shlex.join(command)}")
        ctx = {
            "url": url,
            "port": port,
            "server": server,
            "tokens": tokens,
            "standin_url": standin_url,
            "admin_url": admin_url,
            "db_url": db_url,
            "seeded": seeded,
            "baselines": {},
        }
        log("warm-up: 10 streams x 2 turns")
        warm = summarize(
            run_loadgen(
                chat_job(args, port, tokens, 10, mode="backend") | {"turns_per_worker": 2}, 120
            )
        )
        if warm["failed"]:
            raise RuntimeError(f"warm-up failed: {warm['errors']}")
        time.sleep(args.settle)
        ctx["idle_rss"] = server.memory_info().rss
        report["idle_rss_mb"] = round(ctx["idle_rss"] / 2**20, 1)
        report["idle_pg_connections"] = pg_connections(admin_url, args.db_name)
        report["levels"] = [
            measure_level(args, ctx, level, case) for case in args.cases for level in args.levels
        ]
        report["parallel_agent"] = None if args.no_agents else measure_parallel_agent(args, ctx)
        report["finished"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        if profile_out is not None:  # pyinstrument writes its report when the server exits
            procs.stop(process, signal.SIGINT, wait_s=60)
            report["profile"] = str(profile_out)
            log(f"profile written to {profile_out}")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.close()
        media.cleanup()
        if not args.keep_db:
            drop_database(admin_url, args.db_name)
        if "levels" in report:
            out = RESULTS_DIR / f"bench-{stamp}{'-' + args.label if args.label else ''}.json"
            out.write_text(json.dumps(report, indent=2))
            log(f"results: {out}")
    print(
        f"\n{report['command']}  ({report['machine']['cores']} cores, "
        f"{report['machine']['memory_gib']} GiB, Python {report['machine']['python']}, "
        f"PostgreSQL {report['machine']['postgresql']})\n"
    )
    print(f"server ({args.server_cmd}, {report['server_commit']}): {report['server_command']}")
    print(f"idle server RSS {report['idle_rss_mb']} MB\n")
    print(tables(report["levels"], args))
    for r in report["levels"]:
        if r.get("profile_summary"):
            print(f"py-spy ({r['case']}, {r['level']} streams): {r['profile']}")
            print(f"summary: {r['profile_summary']}")
    if report.get("parallel_agent"):
        print("\nparallel agent (Accept: application/json):\n")
        print(agent_table(report["parallel_agent"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
