"""Benchmark of the admin service at district scale.

Generates cases, clips (segments linked to case steps) and audit entries in bulk (SQLite, raw
executemany inside one transaction per table; the audit entries are real canonical events and
their Merkle subtrees are computed exactly as ``record_event`` would store them, then checked
against ``audit.head``), starts ``lerec-admin serve`` under uvicorn on loopback, and measures
latency under concurrent clients (httpx) for: a trivial endpoint (/healthz), the case page
(/cases/{id}), the case search (/cases?q=...) and the JSON case detail.

    .venv/bin/python bench/bench_admin.py              # scale 0.1: 10k cases, 100k clips, 1M audit
    .venv/bin/python bench/bench_admin.py --full       # 100k cases, 1M clips, 10M audit entries
    .venv/bin/python bench/bench_admin.py --scale 0.01 --requests 300

Target: p95 of the case page <= 3 x p95 of /healthz in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL = {"cases": 100_000, "clips": 1_000_000, "audit": 10_000_000}
PASSWORD = "bench-password-1"
HANDLERS, OFFICERS = 20, 50
CLIPS_PER_CASE = 10
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
PLACES = ["滨江路", "新乡路", "场镇大街", "河坝街", "文化路", "工业园区", "集贸市场", "学校路"]
KINDS_OF_CASE = ["占道经营", "违法建设", "噪声扰民", "乱倒垃圾", "无证经营", "违规停车", "毁坏绿地"]


def ts(moment: dt.datetime) -> str:
    """How UTCDateTime stores a moment in SQLite (naive UTC)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def prepare(url: str) -> None:
    from lerec.hub.db import make_engine, migrate

    engine = make_engine(url)
    await migrate(engine)
    await engine.dispose()


async def add_bench_user(url: str) -> None:
    from lerec.hub.cases import users as user_service
    from lerec.hub.db import make_engine, sessionmaker
    from lerec.hub.rules import default_rulebook

    engine = make_engine(url)
    async with sessionmaker(engine)() as s, s.begin():
        await user_service.create_user(s, default_rulebook(), name="bench_head",
                                       role="agency_head", password=PASSWORD,
                                       display_name="周镇长", actor="hub")
    await engine.dispose()


def generate(db: Path, n_cases: int, n_clips: int, n_audit: int, store_ref: str,
             blob_len: int, blob_sha: str) -> dict[str, float]:
    from hashlib import sha256

    from lerec.hub.audit.compact import CompactRange
    from lerec.hub.audit.merkle import hash_leaves
    from lerec.hub.cases.users import hash_password

    rng = random.Random(52)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-400000")
    timings: dict[str, float] = {}
    now = dt.datetime.now(dt.UTC)
    pw = hash_password(PASSWORD)

    t0 = time.perf_counter()
    con.execute("BEGIN")
    users = []
    for i in range(HANDLERS):
        users.append((f"handler{i:02d}", f"{SURNAMES[i % 20]}承办{i}", "handler", f"handler{i:02d}"))
    for i in range(OFFICERS):
        users.append((f"officer{i:02d}", f"{SURNAMES[i % 20]}执法{i}", "officer", f"officer{i:02d}"))
    con.executemany(
        "INSERT INTO users (name, display_name, role, officer_id, password_hash, active, "
        "created_at) VALUES (?, ?, ?, ?, ?, 1, ?)", [(*u, pw, ts(now)) for u in users])
    ids = {r[0]: r[1] for r in con.execute("SELECT name, id FROM users")}
    handler_ids = [ids[f"handler{i:02d}"] for i in range(HANDLERS)]
    officer_ids = [ids[f"officer{i:02d}"] for i in range(OFFICERS)]
    con.executemany(
        "INSERT INTO devices (device_id, signing_key, label, officer_id, enrolled_at, "
        "last_seen_at, last_seq_reported) VALUES (?, ?, ?, ?, ?, ?, NULL)",
        [(f"rec-{i:03d}", os.urandom(32), f"{i}号执法记录仪", f"officer{i:02d}", ts(now), ts(now))
         for i in range(OFFICERS)])
    con.execute("COMMIT")

    # cases, members, records (+ versions), segments, links
    con.execute("BEGIN")
    case_rows, member_rows, record_rows, version_rows, seg_rows, link_rows = [], [], [], [], [], []
    seq = [0] * OFFICERS
    clip_i = 0
    rec_id = 0
    for cid in range(1, n_cases + 1):
        created = now - dt.timedelta(days=rng.randint(3, 700), minutes=rng.randint(0, 1440))
        h = rng.choice(handler_ids)
        o1, o2 = rng.sample(range(OFFICERS), 2)
        place = rng.choice(PLACES)
        what = rng.choice(KINDS_OF_CASE)
        party = f"{rng.choice(SURNAMES)}某{cid}"
        stage = rng.choice(["investigation", "decision"])
        case_rows.append((cid, f"新乡执〔{created.year}〕{cid:06d}号", f"{place}{party}{what}案",
                          party, "penalty", "ex_officio", stage, 0, "[]", h, h, ts(created),
                          ts(created), 0, 0, ts(now)))
        member_rows += [(cid, h, "handler"), (cid, officer_ids[o1], "officer"),
                        (cid, officer_ids[o2], "officer")]
        t_start = created + dt.timedelta(hours=1)
        t_insp = created + dt.timedelta(days=1)
        t_inq = created + dt.timedelta(days=2)
        start_fields = {
            "reason": f"日常巡查发现{what}", "case_source": "日常巡查", "party_info": party,
            "case_facts": f"{place}{what}", "handler_opinion": "建议立案",
            "unit_opinion": "同意立案", "head_opinion": "同意",
            "recorded_at": t_start.isoformat()}
        insp_fields = {
            "inspected_at": t_insp.isoformat(), "place": f"{place}{cid}号", "target": "premises",
            "inspectors": "执法人员", "party_or_witness": party, "findings": f"现场{what}属实"}
        inq_fields = {
            "started_at": t_inq.isoformat(), "place": "镇综合行政执法办公室",
            "interviewer": "承办人", "recorder": "执法人员", "interviewee": party,
            "transcript": "问：情况是否属实？答：属实。", "signed": True}
        step_ids = []
        for kind, fields, start in (("ex_officio_start", start_fields, None),
                                    ("site_inspection", insp_fields, t_insp),
                                    ("inquiry_party", inq_fields, t_inq)):
            rec_id += 1
            text = json.dumps(fields, ensure_ascii=False, sort_keys=True)
            record_rows.append((rec_id, cid, kind, 1, text, ts(start) if start else None,
                                ts(start + dt.timedelta(hours=1)) if start else None, h,
                                ts(created), ts(created)))
            version_rows.append((rec_id, 1, text, h, ts(created), "新建"))
            if start is not None:
                step_ids.append((rec_id, start))
        for k in range(CLIPS_PER_CASE):
            if clip_i >= n_clips:
                break
            off = (o1, o2)[k % 2]
            rid, start = step_ids[k % 2]
            s_at = start + dt.timedelta(minutes=k * 3)
            manifest = f"bench:{off}:{seq[off]}:{cid}:{k}".encode()
            sid = hashlib.sha256(manifest).hexdigest()[:32]
            seg_rows.append((sid, f"rec-{off:03d}", seq[off], f"officer{off:02d}", ts(s_at),
                             ts(s_at + dt.timedelta(minutes=3)), "video/mp4", blob_len, blob_sha,
                             0, 0, "synced", 0, b"\0" * 32, manifest,
                             hashlib.sha256(manifest).digest(), b"bench", store_ref,
                             ts(s_at + dt.timedelta(hours=2))))
            link_rows.append((sid, str(cid), str(rid), "auto", "自动关联", "hub",
                              ts(s_at + dt.timedelta(hours=2))))
            seq[off] += 1
            clip_i += 1
        if len(case_rows) >= 5000 or cid == n_cases:
            con.executemany("INSERT INTO cases (id, case_no, title, party, enforcement_type, "
                            "start_mode, stage, not_started, facts, handler_id, created_by, "
                            "created_at, updated_at, finding_errors, finding_warnings, "
                            "findings_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", case_rows)
            con.executemany("INSERT INTO case_members (case_id, user_id, role) VALUES (?,?,?)",
                            member_rows)
            con.executemany("INSERT INTO case_records (id, case_id, kind_id, version, fields, "
                            "window_start, window_end, created_by, created_at, updated_at) "
                            "VALUES (?,?,?,?,?,?,?,?,?,?)", record_rows)
            con.executemany("INSERT INTO case_record_versions (record_id, version, fields, "
                            "changed_by, changed_at, reason) VALUES (?,?,?,?,?,?)", version_rows)
            con.executemany("INSERT INTO segments (segment_id, device_id, seq, officer_id, "
                            "start_at, end_at, media_type, length, sha256, important, recovered, "
                            "clock_state, clock_offset_ms, prev_hash, manifest, manifest_hash, "
                            "receipt, stored_ref, received_at) VALUES "
                            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", seg_rows)
            con.executemany("INSERT INTO segment_links (segment_id, case_id, step_id, method, "
                            "reason, created_by, created_at) VALUES (?,?,?,?,?,?,?)", link_rows)
            case_rows, member_rows, record_rows, version_rows = [], [], [], []
            seg_rows, link_rows = [], []
    # clips beyond 10 per case: unlinked segments (recorded but not part of a case)
    while clip_i < n_clips:
        batch = []
        for _ in range(min(10000, n_clips - clip_i)):
            off = clip_i % OFFICERS
            s_at = now - dt.timedelta(minutes=clip_i)
            manifest = f"bench-free:{off}:{seq[off]}".encode()
            batch.append((hashlib.sha256(manifest).hexdigest()[:32], f"rec-{off:03d}", seq[off],
                          f"officer{off:02d}", ts(s_at), ts(s_at + dt.timedelta(minutes=3)),
                          "video/mp4", blob_len, blob_sha, 0, 0, "synced", 0, b"\0" * 32,
                          manifest, hashlib.sha256(manifest).digest(), b"bench", store_ref,
                          ts(s_at + dt.timedelta(hours=2))))
            seq[off] += 1
            clip_i += 1
        con.executemany("INSERT INTO segments (segment_id, device_id, seq, officer_id, "
                        "start_at, end_at, media_type, length, sha256, important, recovered, "
                        "clock_state, clock_offset_ms, prev_hash, manifest, manifest_hash, "
                        "receipt, stored_ref, received_at) VALUES "
                        "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
    con.execute("COMMIT")
    timings["cases+clips"] = time.perf_counter() - t0

    # audit entries: canonical JSON events (the exact bytes record_event writes) and every
    # complete subtree, computed per aligned chunk of 2**16 leaves level by level
    t0 = time.perf_counter()
    compact = CompactRange()
    types = ["view", "record_created", "record_changed", "link", "login", "download"]
    base = int(now.timestamp()) - n_audit
    chunk_level = 16
    con.execute("BEGIN")
    idx = 0
    while idx < n_audit:
        size = min(1 << chunk_level, n_audit - idx)
        if size < (1 << chunk_level):  # the tail: largest aligned power of two that fits
            size = 1 << (size.bit_length() - 1)
        entries = []
        datas = []
        t_chunk = base + idx
        for i in range(idx, idx + size):
            t = dt.datetime.fromtimestamp(t_chunk + (i - idx), dt.UTC)
            typ = types[i % 6]
            actor = f"user:officer{i % OFFICERS:02d}"
            case = f"case:{i % max(n_cases, 1) + 1}"
            data = (f'{{"actor":"{actor}","details":{{"n":{i}}},"subjects":["{case}"],'
                    f'"time":"{t.strftime("%Y-%m-%dT%H:%M:%S.000Z")}","type":"{typ}","v":1}}'
                    ).encode()
            datas.append(data)
            entries.append((i, ts(t), typ, actor, case, data))
        level_hashes = hash_leaves(datas)
        level = 0
        nodes = [(0, (idx >> 0) + j, h) for j, h in enumerate(level_hashes)]
        while len(level_hashes) > 1:
            level += 1
            level_hashes = [sha256(b"\x01" + level_hashes[j] + level_hashes[j + 1]).digest()
                            for j in range(0, len(level_hashes), 2)]
            first = idx >> level
            nodes += [(level, first + j, h) for j, h in enumerate(level_hashes)]
        above = compact.append_subtree(level, level_hashes[0])
        nodes += [(n.level, n.index, n.hash) for n in above[1:]]
        con.executemany("INSERT INTO audit_entries (idx, at, type, actor, subjects, data) "
                        "VALUES (?,?,?,?,?,?)", entries)
        con.executemany("INSERT INTO audit_nodes (level, idx, hash) VALUES (?,?,?)", nodes)
        idx += size
    con.execute("UPDATE audit_head SET size = ? WHERE id = 1", (n_audit,))
    con.execute("COMMIT")
    timings["audit"] = time.perf_counter() - t0
    timings["audit_root"] = compact.root().hex()  # type: ignore[assignment]
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("ANALYZE")
    con.close()
    return timings


async def verify_audit(url: str, expected_root: str, n: int) -> None:
    """The bulk-written tree is the one record_event maintains: same root, and a real append
    with an inclusion proof works on top of it."""
    from lerec.hub.audit import log as audit
    from lerec.hub.audit.entries import EventType
    from lerec.hub.db import make_engine, sessionmaker

    engine = make_engine(url)
    async with sessionmaker(engine)() as s:
        head = await audit.head(s)
        assert head.size == n and head.root.hex() == expected_root, "audit tree mismatch"
    async with sessionmaker(engine)() as s, s.begin():
        await audit.record_event(s, EventType.CONFIG_CHANGED, "hub", [], {"bench": "ready"})
    async with sessionmaker(engine)() as s:
        from lerec.hub.audit.entries import decode_event
        from lerec.hub.audit.merkle import verify_inclusion

        head = await audit.head(s)
        idx, ev = (await audit.entries(s, start=n, limit=1))[0]
        verify_inclusion(idx, head.size, ev.leaf_hash(), await audit.prove_inclusion(
            s, idx, head.size), head.root)
    await engine.dispose()
    _ = decode_event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(base: str, clients: int, requests: int, n_cases: int) -> list[tuple]:
    import httpx

    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        r = await c.get("/api/v1/session")
        r = await c.post("/api/v1/session", json={"username": "bench_head", "password": PASSWORD},
                         headers={"X-CSRF-Token": r.json()["csrf_token"]})
        assert r.status_code == 200, r.text
        cookie = c.cookies.get("lerec_session")

    terms = [f"{ch}某{rng.randint(1, n_cases)}" for ch in SURNAMES] + PLACES + KINDS_OF_CASE

    endpoints = [
        ("/healthz（基准）", lambda: "/healthz"),
        ("案件页面 /cases/{id}", lambda: f"/cases/{rng.randint(1, n_cases)}"),
        ("案件检索 /cases?q=", lambda: f"/cases?q={rng.choice(terms)}"),
        ("案件 JSON /api/v1/cases/{id}", lambda: f"/api/v1/cases/{rng.randint(1, n_cases)}"),
    ]
    results = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits,
                                 cookies={"lerec_session": cookie}) as c, \
            httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as bare:
        for name, make in endpoints:
            client = bare if name.startswith("/healthz") else c
            for _ in range(min(40, requests)):  # warm-up
                (await client.get(make())).raise_for_status()
            single: list[float] = []  # one client: the service time without queueing
            for _ in range(min(200, requests)):
                t = time.perf_counter()
                (await client.get(make())).raise_for_status()
                single.append(time.perf_counter() - t)
            latencies: list[float] = []
            queue = [make() for _ in range(requests)]

            async def worker(queue: list[str], client: httpx.AsyncClient,
                             latencies: list[float]) -> None:
                while queue:
                    url = queue.pop()
                    t = time.perf_counter()
                    r = await client.get(url)
                    latencies.append(time.perf_counter() - t)
                    assert r.status_code == 200, (url, r.status_code, r.text[:200])

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(queue, client, latencies) for _ in range(clients)))
            wall = time.perf_counter() - t0
            q = statistics.quantiles(latencies, n=100)
            results.append((name, len(latencies), statistics.median(latencies) * 1000,
                            q[94] * 1000, q[98] * 1000, len(latencies) / wall,
                            statistics.median(single) * 1000))
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=0.1,
                   help="fraction of the full scale (1.0 = 100k cases, 1M clips, 10M audit)")
    p.add_argument("--full", action="store_true", help="the full scale (same as --scale 1)")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--requests", type=int, default=1000, help="measured requests per endpoint")
    p.add_argument("--dir", type=Path, help="working folder (kept); default a temporary one")
    args = p.parse_args()
    scale = 1.0 if args.full else args.scale
    n_cases = max(10, int(FULL["cases"] * scale))
    n_clips = int(FULL["clips"] * scale)
    n_audit = int(FULL["audit"] * scale)
    work = args.dir or Path(tempfile.mkdtemp(prefix="lerec-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "hub.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    store_dir = work / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    log(f"scale {scale}: {n_cases} cases, {n_clips} clips, {n_audit} audit entries in {work}")

    asyncio.run(prepare(url))
    from lerec.hub.admin.demo import make_mp4
    from lerec.hub.storage import LocalBlobStore

    store = LocalBlobStore(store_dir)
    clip = make_mp4(work / "clip.mp4", seconds=2)
    data = clip.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    staged = store.staging_dir / "bench"
    staged.write_bytes(data)
    ref = asyncio.run(store.put_file(staged, sha, len(data)))

    t0 = time.perf_counter()
    timings = generate(db, n_cases, n_clips, n_audit, ref, len(data), sha)
    root = str(timings.pop("audit_root"))
    log(f"generated in {time.perf_counter() - t0:.0f} s "
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + f"; database {db.stat().st_size / 1e9:.2f} GB")
    asyncio.run(verify_audit(url, root, n_audit))
    log("audit tree verified: bulk-written root equals audit.head(); a new append proves")
    asyncio.run(add_bench_user(url))

    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "lerec.hub.admin", "serve", "--database-url", url,
         "--storage-dir", str(store_dir), "--port", str(port), "--insecure-cookies",
         "--log-level", "WARNING"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        import httpx

        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start: "
                                 + (server.stderr.read().decode() if server.stderr else ""))
            time.sleep(0.3)
        results = asyncio.run(measure(base, args.clients, args.requests, n_cases))
    finally:
        server.terminate()
        server.wait(timeout=30)

    base_p95 = results[0][3]
    load = os.getloadavg()
    print()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"lerec-admin benchmark · scale {scale} ({n_cases:,} cases, {n_clips:,} clips, "
          f"{n_audit:,} audit entries) · {args.clients} concurrent clients · SQLite · "
          f"uvicorn 1 worker on loopback")
    print(f"{'endpoint':<32}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'req/s':>9}"
          f"{'p95 / healthz':>15}{'1-client p50 ms':>17}")
    for name, n, p50, p95, p99, rps, one in results:
        print(f"{name:<32}{n:>7}{p50:>10.1f}{p95:>10.1f}{p99:>10.1f}{rps:>9.0f}"
              f"{p95 / base_p95:>14.1f}x{one:>17.1f}")
    ratio = results[1][3] / base_p95
    print(f"\ncase page p95 / healthz p95 = {ratio:.2f} (target <= 3): "
          f"{'MET' if ratio <= 3 else 'NOT MET'}")
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
