#!/usr/bin/env python3
"""Helpers for bench/bench.sh (Python 3 standard library only).

    benchlib.py measure --out RUN.json [--user NAME] -- CMD ARGS...
        Runs CMD (as NAME when given and we are root) and writes wall seconds, CPU seconds
        (user+sys of CMD and every descendant it waited for, from wait4's rusage), and peak RSS:
        the largest sum, over CMD's whole process tree, of the resident set sizes sampled from
        /proc every 20 ms; never below the largest single-process peak wait4 reports (ru_maxrss),
        which catches short-lived processes the sampler misses. Exits with CMD's exit status.

    benchlib.py repeat --out RUN.json [--user NAME] [--times N | --items FILE] -- CMD ARGS...
        Runs CMD N times one after the other (or once per line of FILE, with every "{}" in CMD
        replaced by the line) and writes the median wall and CPU seconds of one call as "wall" and
        "cpu", every call's wall time ("calls"), and the largest single-process peak RSS. For
        latencies (start-up, one archive-push): per call only the fork/exec/wait4 of the command,
        no shell. Stops at the first call that fails and exits with its status.

    benchlib.py waitgone --pattern TEXT [--timeout S]
        Waits until no other process has TEXT in its command line (detached background
        archivers); exits 1 if some still do after S seconds (default 60).

    benchlib.py sample --out FILE --bytes N DIR...
        Writes a sample of the files under DIRs: the same leading fraction of every file, so the
        sample has the data set's mix of tables, indexes and free space.

    benchlib.py report --runs RUNS.jsonl --meta META.json --out RESULT.json
        Reads one JSON line per measured run, prints a table per case and writes RESULT.json.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------
# measure


def _children(pid):
    """Direct children of pid, through every thread's /proc children list."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def _tree_rss(root):
    """Sum of resident set sizes (bytes) of root and all its descendants."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        stack.extend(_children(pid))
    return total


def _drop_to(user):
    import pwd

    entry = pwd.getpwnam(user)

    def demote():
        os.initgroups(user, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return entry, demote


def cmd_measure(args):
    command = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        sys.exit("measure: no command")
    env = dict(os.environ)
    preexec = None
    if args.user and os.geteuid() == 0:
        entry, preexec = _drop_to(args.user)
        env.update(HOME=entry.pw_dir, USER=args.user, LOGNAME=args.user)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            if preexec:
                preexec()
            os.execvpe(command[0], command, env)
        except BaseException as e:  # noqa: BLE001 - report and leave the child
            print(f"measure: cannot run {command[0]}: {e}", file=sys.stderr)
        os._exit(127)

    peak = [0]
    done = threading.Event()

    def sampler():
        while not done.is_set():
            rss = _tree_rss(pid)
            if rss > peak[0]:
                peak[0] = rss
            done.wait(0.02)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - start
    done.set()
    thread.join()
    rc = os.waitstatus_to_exitcode(status)
    max_single = usage.ru_maxrss * 1024  # kilobytes on Linux
    result = {
        "wall": round(wall, 4),
        "cpu_user": round(usage.ru_utime, 4),
        "cpu_sys": round(usage.ru_stime, 4),
        "cpu": round(usage.ru_utime + usage.ru_stime, 4),
        "peak_rss": max(peak[0], max_single),
        "peak_rss_sampled": peak[0],
        "max_process_rss": max_single,
        "rc": rc,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    sys.exit(rc if rc >= 0 else 128 - rc)


# ---------------------------------------------------------------------------------------------
# repeat


def cmd_repeat(args):
    command = args.command
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        sys.exit("repeat: no command")
    if args.items:
        with open(args.items) as f:
            items = [line.strip() for line in f if line.strip()]
        commands = [[a.replace("{}", item) for a in command] for item in items]
    else:
        commands = [command] * args.times
    if args.user and os.geteuid() == 0:
        # posix_spawn (vfork) keeps the per-call overhead far below fork's; it cannot change
        # user, so run the whole loop as that user.
        entry, demote = _drop_to(args.user)
        os.environ.update(HOME=entry.pw_dir, USER=args.user, LOGNAME=args.user)
        demote()
    import shutil
    env = dict(os.environ)
    walls, cpus, rss, rc = [], [], 0, 0
    for argv in commands:
        exe = shutil.which(argv[0]) or argv[0]
        start = time.monotonic()
        pid = os.posix_spawn(exe, argv, env)
        _, status, usage = os.wait4(pid, 0)
        walls.append(time.monotonic() - start)
        cpus.append(usage.ru_utime + usage.ru_stime)
        rss = max(rss, usage.ru_maxrss * 1024)
        rc = os.waitstatus_to_exitcode(status)
        if rc != 0:
            print(f"repeat: call {len(walls)} failed with {rc}: {' '.join(argv)}", file=sys.stderr)
            break
    result = {
        "wall": round(statistics.median(walls), 6),
        "cpu": round(statistics.median(cpus), 6),
        "cpu_user": None, "cpu_sys": None,
        # not measurable here: a posix_spawn child's ru_maxrss is the parent's (vfork shares it)
        "peak_rss": None, "max_process_rss": None,
        "calls": [round(w, 6) for w in walls],
        "rc": rc,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    sys.exit(rc if rc >= 0 else 128 - rc)


def cmd_uncache(args):
    """Drops the clean page-cache pages of every file under the directories (posix_fadvise
    DONTNEED): a restore then reads its repository from disk, as a restore after a disaster
    does, whichever way the backup wrote it (pgkeep's O_DIRECT writes leave nothing cached,
    buffered writes leave the whole repository cached)."""
    for top in args.dirs:
        for root, _, files in os.walk(top):
            for name in files:
                try:
                    fd = os.open(os.path.join(root, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def cmd_waitgone(args):
    """Waits until no process (but this one) has PATTERN in its command line; 1 on timeout."""
    pattern = args.pattern.encode()
    me = os.getpid()
    deadline = time.monotonic() + args.timeout
    while True:
        busy = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == me:
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if pattern in f.read():
                        busy.append(int(d))
            except OSError:
                pass
        if not busy:
            return
        if time.monotonic() > deadline:
            print(f"waitgone: still running: {busy}", file=sys.stderr)
            sys.exit(1)
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# sample


def cmd_sample(args):
    files = []
    for top in args.dirs:
        for dirpath, _, names in os.walk(top):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                try:
                    size = os.lstat(path).st_size
                except OSError:
                    continue
                if os.path.isfile(path) and size > 0:
                    files.append((path, size))
    total = sum(s for _, s in files)
    fraction = min(1.0, args.bytes / total) if total else 0
    written = 0
    with open(args.out, "wb") as out:
        for path, size in files:
            want = int(size * fraction) // 8192 * 8192 or min(size, 8192)
            with open(path, "rb") as f:
                while want > 0:
                    chunk = f.read(min(want, 1 << 20))
                    if not chunk:
                        break
                    out.write(chunk)
                    want -= len(chunk)
                    written += len(chunk)
    print(written)


# ---------------------------------------------------------------------------------------------
# report


def _median(values):
    return statistics.median(values) if values else None


def _fmt_s(v, unit="s"):
    if v is None:
        return "-"
    if unit == "ms":
        v *= 1000
        return f"{v:.1f}" if v < 1000 else f"{v:.0f}"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _fmt_bytes(v):
    if v is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if v >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v} B"


def compute_limit(case, speeds, cores):
    """Bytes per second the machine's cores could push through the case's codec plus SHA-256.

    Per byte a core spends (codec time + SHA-256 time); a case with process-max P uses up to
    min(P, cores) cores. Returns None when the case has no such model (incremental backups).
    """
    codec = case.get("codec")
    op = case.get("op")
    if not codec or op not in ("compress", "decompress"):
        return None
    key = f"{codec}_{op}"
    if key not in speeds or "sha256" not in speeds:
        return None
    per_byte = 1 / speeds[key] + 1 / speeds["sha256"]
    return min(case.get("process_max", 1), cores) / per_byte


def cmd_report(args):
    with open(args.meta) as f:
        meta = json.load(f)
    runs = []
    with open(args.runs) as f:
        for line in f:
            line = line.strip()
            if line:
                runs.append(json.loads(line))
    cases = meta["cases"]
    speeds = meta.get("speeds", {})
    cores = meta.get("machine", {}).get("cores", 1)
    tools = tuple(meta.get("tools") or ("pgkeep", "pgbackrest"))
    # With BENCH_BASELINE, a second pgkeep build ran in the same rounds: pgkeep/pgkeep-base per
    # round (wall and CPU) says whether this build is slower than that one on the same machine.
    baseline = "pgkeep-base" if "pgkeep-base" in tools else None
    baseline_rows = []
    results = []
    out = sys.stdout
    print(f"\n{meta.get('pgkeep_version', 'pgkeep')} vs {meta.get('pgbackrest_version', 'pgBackRest')}  |  {meta.get('date', '')}  |  "
          f"BENCH_SCALE={meta.get('scale')}  BENCH_ROUNDS={meta.get('rounds')}  |  "
          f"{meta.get('machine', {}).get('cpu', '?')}, {cores} cores"
          + (f", load average at the start {meta['loadavg_start']}" if meta.get("loadavg_start") else ""), file=out)
    if speeds:
        print("single-core speeds on the data sample (MB/s): " +
              ", ".join(f"{k} {v / 1e6:.0f}" for k, v in sorted(speeds.items())), file=out)
    for case in cases:
        name = case["name"]
        entry = {"case": name, "description": case.get("description", ""), "data_bytes": case.get("data_bytes"),
                 "tools": {}, "ratio_per_round": [], "ratio_median": None}
        by_tool = {}
        for tool in tools:
            tr = [r for r in runs if r["case"] == name and r["tool"] == tool]
            ok = [r for r in tr if r.get("status") == "ok"]
            status = "ok" if ok else (tr[0]["status"] if tr else "not run")
            if ok and len(ok) < len(tr):
                status = "partly failed"
            walls = [r["wall"] for r in ok]
            t = {
                "status": status,
                "rounds": [{k: r.get(k) for k in ("round", "wall", "cpu", "cpu_user", "cpu_sys", "peak_rss",
                                                   "repo_bytes", "status", "note", "copy_seconds")} for r in tr],
                "copy_median": _median([r["copy_seconds"] for r in ok if r.get("copy_seconds") is not None]),
                "wall_median": _median(walls),
                "wall_min": min(walls) if walls else None,
                "wall_max": max(walls) if walls else None,
                "cpu_median": _median([r["cpu"] for r in ok]),
                "peak_rss_max": max((r["peak_rss"] for r in ok if r.get("peak_rss") is not None), default=None),
                "repo_bytes_median": _median([r["repo_bytes"] for r in ok if r.get("repo_bytes") is not None]),
            }
            by_tool[tool] = ok
            entry["tools"][tool] = t
        ratios = []
        for r in sorted({r["round"] for r in by_tool["pgkeep"]}):
            a = [x["wall"] for x in by_tool["pgkeep"] if x["round"] == r]
            b = [x["wall"] for x in by_tool["pgbackrest"] if x["round"] == r]
            if a and b and b[0] > 0:
                ratios.append(round(a[0] / b[0], 3))
        entry["ratio_per_round"] = ratios
        entry["ratio_median"] = _median(ratios)
        base_wall, base_cpu = [], []
        if baseline:
            for r in sorted({r["round"] for r in by_tool["pgkeep"]}):
                a = [x for x in by_tool["pgkeep"] if x["round"] == r]
                b = [x for x in by_tool[baseline] if x["round"] == r]
                if a and b and b[0]["wall"] > 0:
                    base_wall.append(round(a[0]["wall"] / b[0]["wall"], 3))
                if a and b and b[0].get("cpu") and a[0].get("cpu") is not None:
                    base_cpu.append(round(a[0]["cpu"] / b[0]["cpu"], 3))
            entry["baseline_ratio_per_round"] = base_wall
            entry["baseline_ratio_median"] = _median(base_wall)
            entry["baseline_cpu_ratio_per_round"] = base_cpu
            entry["baseline_cpu_ratio_median"] = _median(base_cpu)
            if base_wall:
                baseline_rows.append((name, _median(base_wall), _median(base_cpu)))
        limit = compute_limit(case, speeds, cores)
        entry["compute_limit_bytes_per_s"] = limit
        data = case.get("data_bytes")
        for tool in tools:
            t = entry["tools"][tool]
            t["fraction_of_compute_limit"] = (
                round(data / t["wall_median"] / limit, 3) if limit and data and t["wall_median"] else None)
            t["copy_fraction_of_compute_limit"] = (
                round(data / t["copy_median"] / limit, 3) if limit and data and t.get("copy_median") else None)
        results.append(entry)

        print(f"\n== {name}: {case.get('description', '')}"
              + (f"  [{_fmt_bytes(data)} of data]" if data else ""), file=out)
        unit = case.get("unit") or "s"
        print(f"   {'tool':<11} {'wall median [min-max] ' + unit:<26} {'CPU ' + unit:>8} {'peak RSS':>10} "
              f"{'repo bytes':>11} {'of limit':>9}", file=out)
        for tool in tools:
            t = entry["tools"][tool]
            if t["wall_median"] is None:
                print(f"   {tool:<11} {t['status']}", file=out)
                continue
            span = f"{_fmt_s(t['wall_median'], unit)} [{_fmt_s(t['wall_min'], unit)}-{_fmt_s(t['wall_max'], unit)}]"
            frac = t["fraction_of_compute_limit"]
            print(f"   {tool:<11} {span:<26} {_fmt_s(t['cpu_median'], unit):>8} {_fmt_bytes(t['peak_rss_max']):>10} "
                  f"{_fmt_bytes(t['repo_bytes_median']):>11} {('-' if frac is None else f'{frac:.0%}'):>9}"
                  + ("" if t["status"] == "ok" else f"  ({t['status']})"), file=out)
        if any(entry["tools"][tool].get("copy_median") for tool in tools):
            parts = []
            for tool in tools:
                t = entry["tools"][tool]
                if not t.get("copy_median"):
                    parts.append(f"{tool} -")
                    continue
                frac = t["copy_fraction_of_compute_limit"]
                parts.append(f"{tool} {t['copy_median']:.2f} s" + ("" if frac is None else f" ({frac:.0%} of limit)"))
            print("   copy phase (backup start to stop log lines), median: " + ", ".join(parts), file=out)
        items = case.get("items")
        if items:
            rates = {tool: (round(items / entry["tools"][tool]["wall_median"], 2)
                            if entry["tools"][tool]["wall_median"] else None) for tool in tools}
            entry["rate_per_s"] = rates
            print(f"   {case.get('item_name', 'items')}/s: " + ", ".join(
                f"{tool} {'-' if rates[tool] is None else f'{rates[tool]:.1f}'}" for tool in tools), file=out)
        if ratios:
            print(f"   pgkeep/pgBackRest per round: {' '.join(f'{x:.2f}' for x in ratios)}  "
                  f"median {entry['ratio_median']:.2f}", file=out)
        if base_wall:
            print(f"   pgkeep/pgkeep-base per round: wall {' '.join(f'{x:.3f}' for x in base_wall)}  "
                  f"median {entry['baseline_ratio_median']:.3f}"
                  + (f"; CPU median {entry['baseline_cpu_ratio_median']:.3f}" if base_cpu else ""), file=out)
    if baseline_rows:
        print(f"\n== pgkeep against the baseline build ({meta.get('pgkeep_base_version') or 'pgkeep-base'}): "
              "median per-round ratios, above 1.03 marked", file=out)
        print(f"   {'case':<28} {'wall':>7} {'CPU':>7}", file=out)
        for name, wall, cpu in baseline_rows:
            mark = "  <- slower" if wall > 1.03 else ""
            cpu_text = "-" if cpu is None else f"{cpu:.3f}"
            print(f"   {name:<28} {wall:>7.3f} {cpu_text:>7}{mark}", file=out)
    document = dict(meta)
    document["results"] = results
    with open(args.out, "w") as f:
        json.dump(document, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"\nresults: {args.out}", file=out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", required=True)
    m.add_argument("--user")
    m.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("repeat")
    p.add_argument("--out", required=True)
    p.add_argument("--user")
    p.add_argument("--times", type=int, default=50)
    p.add_argument("--items")
    p.add_argument("command", nargs=argparse.REMAINDER)
    w = sub.add_parser("waitgone")
    w.add_argument("--pattern", required=True)
    w.add_argument("--timeout", type=float, default=60)
    s = sub.add_parser("sample")
    s.add_argument("--out", required=True)
    s.add_argument("--bytes", type=int, required=True)
    s.add_argument("dirs", nargs="+")
    u = sub.add_parser("uncache")
    u.add_argument("dirs", nargs="+")
    r = sub.add_parser("report")
    r.add_argument("--runs", required=True)
    r.add_argument("--meta", required=True)
    r.add_argument("--out", required=True)
    args = parser.parse_args()
    {"measure": cmd_measure, "repeat": cmd_repeat, "waitgone": cmd_waitgone, "sample": cmd_sample, "uncache": cmd_uncache, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
