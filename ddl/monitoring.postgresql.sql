-- Monitoring views (seed 004 "PostgreSQL Monitoring", over the seven domain schemas instead of `public`),
-- created by `apply --with monitoring-views` in the system schema and dropped by rollback. PostgreSQL only.
-- Each statement is one CREATE VIEW; dpro-migrate reads the name after CREATE VIEW.
-- Sizes of a partitioned table are the sums over its partitions; rows are the planner's estimate
-- (pg_class.reltuples, kept by ANALYZE and autovacuum; -1 = never analyzed), which costs nothing to read.

CREATE VIEW system.monitoring_table_sizes AS
SELECT n.nspname AS schema_name,
       c.relname AS table_name,
       c.relkind = 'p' AS partitioned,
       s.estimated_rows,
       s.table_bytes,
       s.index_bytes,
       s.total_bytes,
       pg_size_pretty(s.total_bytes) AS total_size
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
    SELECT coalesce(sum(greatest(p.reltuples, 0)), 0)::bigint AS estimated_rows,
           coalesce(sum(pg_table_size(p.oid)), 0)::bigint AS table_bytes,
           coalesce(sum(pg_indexes_size(p.oid)), 0)::bigint AS index_bytes,
           coalesce(sum(pg_total_relation_size(p.oid)), 0)::bigint AS total_bytes
    FROM pg_class p
    -- the table itself, or every partition of a partitioned one (the leaves hold the rows and the bytes)
    WHERE p.relkind = 'r' AND (p.oid = c.oid OR p.oid IN (SELECT t.relid FROM pg_partition_tree(c.oid) t))
) s
WHERE n.nspname IN ('iam', 'ai_agents', 'communication', 'workflow', 'tasks', 'system', 'marketplace')
  AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
ORDER BY s.total_bytes DESC, schema_name, table_name;

CREATE VIEW system.monitoring_index_usage AS
SELECT s.schemaname AS schema_name,
       s.relname AS table_name,
       s.indexrelname AS index_name,
       s.idx_scan AS index_scans,
       s.idx_tup_read AS tuples_read,
       s.idx_tup_fetch AS tuples_fetched,
       pg_relation_size(s.indexrelid) AS index_bytes,
       pg_size_pretty(pg_relation_size(s.indexrelid)) AS index_size
FROM pg_stat_user_indexes s
WHERE s.schemaname IN ('iam', 'ai_agents', 'communication', 'workflow', 'tasks', 'system', 'marketplace')
ORDER BY s.idx_scan DESC, schema_name, table_name, index_name;

CREATE VIEW system.monitoring_rows_per_domain AS
SELECT schema_name AS domain,
       count(*) AS tables,
       sum(estimated_rows)::bigint AS estimated_rows,
       sum(total_bytes)::bigint AS total_bytes,
       pg_size_pretty(sum(total_bytes)::bigint) AS total_size
FROM system.monitoring_table_sizes
GROUP BY schema_name
ORDER BY total_bytes DESC, domain;

CREATE VIEW system.monitoring_connections AS
SELECT coalesce(state, 'background') AS state,
       count(*) AS connections
FROM pg_stat_activity
WHERE datname = current_database()
GROUP BY 1
ORDER BY 2 DESC, 1;
