"""The SQL of the viewer's own tables in a span file: what `kit.live.viewer.index` creates
(`SCHEMA`), how it catches up with the spans stored since its last look (stage, index, summarise,
roll up, rename), and the duration buckets of the performance tables. `Index` runs these; the
module doc of `kit.live.viewer.index` says what each table holds."""
from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS kit_spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
    service TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
    start_ms REAL NOT NULL, duration_ms REAL NOT NULL,
    port INTEGER, raw_target TEXT, target TEXT, grp TEXT NOT NULL, tags TEXT,
    bucket INTEGER NOT NULL,
    PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kit_spans_by_time ON kit_spans
    (kind, start_ms, service, grp, bucket, duration_ms, status);
CREATE INDEX IF NOT EXISTS kit_spans_by_grp ON kit_spans
    (kind, service, grp, bucket, duration_ms, start_ms, status, tags);
CREATE INDEX IF NOT EXISTS kit_spans_by_edge ON kit_spans
    (kind, service, target, bucket, duration_ms, start_ms, status);
CREATE TABLE IF NOT EXISTS kit_traces (
    trace_id TEXT PRIMARY KEY, start_ms REAL NOT NULL, end_ms REAL NOT NULL,
    duration_ms REAL NOT NULL, span_count INTEGER NOT NULL, error_count INTEGER NOT NULL,
    root_name TEXT, root_service TEXT, services TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kit_traces_by_start ON kit_traces (start_ms);
CREATE INDEX IF NOT EXISTS kit_traces_errors ON kit_traces (start_ms) WHERE error_count > 0;
CREATE INDEX IF NOT EXISTS kit_traces_by_duration ON kit_traces (duration_ms);
CREATE TABLE IF NOT EXISTS kit_trace_ops (
    service TEXT NOT NULL, name TEXT NOT NULL, trace_id TEXT NOT NULL, start_ms REAL NOT NULL,
    duration_ms REAL NOT NULL, error_count INTEGER NOT NULL,
    PRIMARY KEY (trace_id, service, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kit_trace_ops_by_start ON kit_trace_ops
    (service, name, start_ms, error_count, duration_ms);
CREATE INDEX IF NOT EXISTS kit_traces_by_duration_start ON kit_traces (duration_ms, start_ms);
CREATE TABLE IF NOT EXISTS kit_rollup (
    kind TEXT NOT NULL, service TEXT NOT NULL, grp TEXT NOT NULL, minute INTEGER NOT NULL,
    bucket INTEGER NOT NULL, count INTEGER NOT NULL, errors INTEGER NOT NULL,
    total REAL NOT NULL, max REAL NOT NULL,
    PRIMARY KEY (kind, minute, service, grp, bucket)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kit_operations (service TEXT, name TEXT, kind TEXT,
    PRIMARY KEY (service, name, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kit_endpoints (port INTEGER PRIMARY KEY, service TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kit_aliases (address TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kit_state (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""

#: The layout of the tables above; a span file indexed with another is indexed again.
SCHEMA_VERSION = 5
DERIVED = ("kit_spans", "kit_traces", "kit_trace_ops", "kit_rollup", "kit_operations", "kit_endpoints",
            "kit_aliases", "kit_state")

# One INSERT ... SELECT per catch-up: SQLite's JSON functions read the attributes. A CLIENT
# span's group is `target \x1f type \x1f name` (name with the URL path for HTTP); its target is
# `db.system`, `peer.service`, an alias of its address, the service that answers on its port
# (`kit_endpoints`), else the address.
STAGE = """
CREATE TEMP TABLE IF NOT EXISTS kit_stage (
    trace_id TEXT, span_id TEXT, parent_span_id TEXT, service TEXT, name TEXT, kind TEXT,
    status TEXT, start_ms REAL, duration_ms REAL, port INTEGER, system TEXT, address TEXT,
    url TEXT, tags TEXT);
DELETE FROM temp.kit_stage;
"""
FILL_STAGE = """
INSERT INTO temp.kit_stage
SELECT trace_id, span_id, parent_span_id, service, name, kind, status, start_ms, duration_ms,
       json_extract(attributes, '$."server.port"'),
       CASE WHEN kind = 'CLIENT' THEN COALESCE(json_extract(attributes, '$."db.system"'),
                                               json_extract(attributes, '$."peer.service"')) END,
       CASE WHEN kind = 'CLIENT' THEN json_extract(attributes, '$."server.address"') END,
       CASE WHEN kind = 'CLIENT' THEN json_extract(attributes, '$."url.full"') END,
       CASE WHEN kind = 'SERVER' AND instr(attributes, '"experiment.') > 0 THEN
            (SELECT json_group_object(key, value) FROM json_each(attributes)
             WHERE key LIKE 'experiment.%') END
FROM spans WHERE rowid > ? AND rowid <= ?
"""
ENDPOINTS = """
INSERT OR REPLACE INTO kit_endpoints
SELECT DISTINCT port, service FROM temp.kit_stage WHERE kind = 'SERVER' AND port IS NOT NULL
"""
_REST = "substr(url, instr(url, '://') + 3)"
_PATH = f"CASE WHEN instr({_REST}, '/') > 0 THEN substr({_REST}, instr({_REST}, '/')) ELSE '/' END"
_NOQUERY = f"CASE WHEN instr({_PATH}, '?') > 0 THEN substr({_PATH}, 1, instr({_PATH}, '?') - 1) ELSE {_PATH} END"
INDEX_SPANS = f"""
INSERT OR REPLACE INTO kit_spans
SELECT trace_id, span_id, parent_span_id, service, name, kind, status, start_ms, duration_ms,
       port, raw, tgt,
       CASE WHEN kind = 'CLIENT' THEN tgt || char(31) ||
            (CASE WHEN system IS NOT NULL THEN system WHEN url IS NOT NULL THEN 'HTTP'
                  ELSE 'other' END) || char(31) ||
            (CASE WHEN system IS NULL AND url LIKE '%://%' THEN name || ' ' || ({_NOQUERY})
                  ELSE name END)
            ELSE name END, tags, {{BUCKET}}
FROM (SELECT s.*, COALESCE(s.system, s.address || COALESCE(':' || s.port, ''), 'unknown') AS raw,
             COALESCE(s.system, a1.name, a2.name, e.service,
                      s.address || COALESCE(':' || s.port, ''), 'unknown') AS tgt
      FROM temp.kit_stage s
      LEFT JOIN kit_aliases a1 ON a1.address = s.address || ':' || s.port
      LEFT JOIN kit_aliases a2 ON a2.address = s.address
      LEFT JOIN kit_endpoints e ON e.port = s.port AND s.kind = 'CLIENT' AND s.system IS NULL)
"""
TOUCHED = "SELECT DISTINCT trace_id FROM temp.kit_stage"
SUMMARISE = """
INSERT OR REPLACE INTO kit_traces
SELECT a.trace_id, a.start_ms, a.end_ms, a.end_ms - a.start_ms, a.n, a.errors,
       r.name, r.service, a.services
FROM (SELECT trace_id, MIN(start_ms) AS start_ms, MAX(start_ms + duration_ms) AS end_ms,
             COUNT(*) AS n, SUM(status = 'ERROR') AS errors,
             group_concat(DISTINCT service) AS services
      FROM kit_spans WHERE trace_id IN (SELECT trace_id FROM temp.kit_touched)
      GROUP BY trace_id) AS a
JOIN (SELECT trace_id, name, service, MIN(start_ms) FROM kit_spans
      WHERE trace_id IN (SELECT trace_id FROM temp.kit_touched)
      GROUP BY trace_id) AS r USING (trace_id)
"""
# The per-minute rollup of the performance tables: counts per (kind, service, group, minute,
# duration bucket), kept by the catch-up (a span stored again is taken out first).
def _roll(sign: str, where: str) -> str:
    return f"""
INSERT INTO kit_rollup (kind, service, grp, minute, bucket, count, errors, total, max)
SELECT kind, service, grp, CAST(start_ms / 60000 AS INTEGER), bucket,
       {sign}COUNT(*), {sign}SUM(status = 'ERROR'), {sign}SUM(duration_ms), MAX(duration_ms)
FROM kit_spans WHERE {where}
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (kind, minute, service, grp, bucket) DO UPDATE SET
    count = count + excluded.count, errors = errors + excluded.errors,
    total = total + excluded.total, max = MAX(max, excluded.max)
"""


_IN_STAGE = "(trace_id, span_id) IN (SELECT trace_id, span_id FROM temp.kit_stage)"
UNROLL = _roll("-", _IN_STAGE)
ROLL = _roll("", _IN_STAGE)
REROLL_CLIENTS = ("DELETE FROM kit_rollup WHERE kind = 'CLIENT'", _roll("", "kind = 'CLIENT'"))

# A CLIENT span indexed before the service it called was known is named once it is.
RENAME = """
UPDATE kit_spans SET target = (SELECT service FROM kit_endpoints e WHERE e.port = kit_spans.port),
                     grp = (SELECT service FROM kit_endpoints e WHERE e.port = kit_spans.port)
                           || substr(grp, instr(grp, char(31)))
WHERE target = raw_target AND kind = 'CLIENT' AND port IN (SELECT port FROM kit_endpoints)
  AND raw_target LIKE '%:' || port
"""


# A request's rows in `kit_trace_ops`: one per (service, request name) and one per service
# (name ''), each with its trace's start, duration and error count, so a search by service or
# operation walks one index in start order and stops at the page's end.
TRACE_OPS = (
    "DELETE FROM kit_trace_ops WHERE trace_id IN (SELECT trace_id FROM temp.kit_touched)",
    ("INSERT OR REPLACE INTO kit_trace_ops SELECT DISTINCT k.service, k.name, k.trace_id, "
     "t.start_ms, t.duration_ms, t.error_count FROM kit_spans k JOIN kit_traces t USING (trace_id) "
     "WHERE k.trace_id IN (SELECT trace_id FROM temp.kit_touched) AND k.kind = 'SERVER'"),
    ("INSERT OR REPLACE INTO kit_trace_ops SELECT DISTINCT k.service, '', k.trace_id, "
     "t.start_ms, t.duration_ms, t.error_count FROM kit_spans k JOIN kit_traces t USING (trace_id) "
     "WHERE k.trace_id IN (SELECT trace_id FROM temp.kit_touched) AND k.kind = 'SERVER'"),
)


#: The duration distribution's bucket bounds (ms), as Application Insights draws them.
BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def _bucket_sql(column: str) -> str:
    cases = " ".join(f"WHEN {column} <= {b} THEN {i}" for i, b in enumerate(BUCKETS_MS))
    return f"CASE {cases} ELSE {len(BUCKETS_MS)} END"


INDEX_SPANS = INDEX_SPANS.replace("{BUCKET}", _bucket_sql("duration_ms"))


def bucket_label(i: int) -> str:
    if i == 0:
        return f"≤ {BUCKETS_MS[0]} ms"
    if i >= len(BUCKETS_MS):
        return f"> {BUCKETS_MS[-1]:,} ms"
    return f"{BUCKETS_MS[i - 1]:,}–{BUCKETS_MS[i]:,} ms"
