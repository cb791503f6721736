"""types.py: one table of type classes. The SQL each class writes is golden: these literals are what the places
that held the knowledge before types.py produced (byte for byte), for every class and hostile names."""

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlglot import exp

from dpro_migrate.errors import BadInput
from dpro_migrate.types import (TYPE_CLASSES, pg_type_for_legacy, sqlite_affinity, sqlite_declared_type,
                                type_class_of_ddl, type_class_of_legacy, type_class_of_pg, varchar_length)

COLUMNS = ["id", 'a"b', "it's; --"]

# (class, column) -> COPY CSV field (SQLite SQL); was plan/copy_lines.field_sql
COPY_FIELD = {('bigint', 'id'): 'CASE typeof("id") WHEN \'integer\' THEN "id" WHEN \'null\' THEN NULL ELSE \'refused,by '
                   "dpro-migrate' END",
 ('bigint', 'a"b'): 'CASE typeof("a""b") WHEN \'integer\' THEN "a""b" WHEN \'null\' THEN NULL ELSE \'refused,by '
                    "dpro-migrate' END",
 ('bigint', "it's; --"): 'CASE typeof("it\'s; --") WHEN \'integer\' THEN "it\'s; --" WHEN \'null\' THEN NULL ELSE '
                         "'refused,by dpro-migrate' END",
 ('double', 'id'): 'CASE typeof("id") WHEN \'real\' THEN printf(\'%!.20e\', "id") WHEN \'integer\' THEN "id" WHEN '
                   "'null' THEN NULL ELSE 'refused,by dpro-migrate' END",
 ('double', 'a"b'): 'CASE typeof("a""b") WHEN \'real\' THEN printf(\'%!.20e\', "a""b") WHEN \'integer\' THEN "a""b" '
                    "WHEN 'null' THEN NULL ELSE 'refused,by dpro-migrate' END",
 ('double', "it's; --"): 'CASE typeof("it\'s; --") WHEN \'real\' THEN printf(\'%!.20e\', "it\'s; --") WHEN \'integer\' '
                         'THEN "it\'s; --" WHEN \'null\' THEN NULL ELSE \'refused,by dpro-migrate\' END',
 ('boolean', 'id'): 'CASE WHEN typeof("id") = \'integer\' AND "id" IN (0, 1) THEN iif("id", \'t\', \'f\') WHEN "id" IS '
                    "NULL THEN NULL ELSE 'refused,by dpro-migrate' END",
 ('boolean', 'a"b'): 'CASE WHEN typeof("a""b") = \'integer\' AND "a""b" IN (0, 1) THEN iif("a""b", \'t\', \'f\') WHEN '
                     '"a""b" IS NULL THEN NULL ELSE \'refused,by dpro-migrate\' END',
 ('boolean', "it's; --"): 'CASE WHEN typeof("it\'s; --") = \'integer\' AND "it\'s; --" IN (0, 1) THEN iif("it\'s; --", '
                          '\'t\', \'f\') WHEN "it\'s; --" IS NULL THEN NULL ELSE \'refused,by dpro-migrate\' END',
 ('timestamptz', 'id'): 'CASE WHEN typeof("id") = \'text\' AND "id" GLOB \'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] '
                        '[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\' AND substr("id", 12, 2) < \'24\' AND substr("id", 15, 2) < '
                        '\'60\' AND substr("id", 18, 2) < \'60\' THEN "id" WHEN "id" IS NULL THEN NULL ELSE '
                        "'refused,by dpro-migrate' END",
 ('timestamptz', 'a"b'): 'CASE WHEN typeof("a""b") = \'text\' AND "a""b" GLOB '
                         "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]' AND "
                         'substr("a""b", 12, 2) < \'24\' AND substr("a""b", 15, 2) < \'60\' AND substr("a""b", 18, 2) '
                         '< \'60\' THEN "a""b" WHEN "a""b" IS NULL THEN NULL ELSE \'refused,by dpro-migrate\' END',
 ('timestamptz', "it's; --"): 'CASE WHEN typeof("it\'s; --") = \'text\' AND "it\'s; --" GLOB '
                              "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]' AND "
                              'substr("it\'s; --", 12, 2) < \'24\' AND substr("it\'s; --", 15, 2) < \'60\' AND '
                              'substr("it\'s; --", 18, 2) < \'60\' THEN "it\'s; --" WHEN "it\'s; --" IS NULL THEN NULL '
                              "ELSE 'refused,by dpro-migrate' END",
 ('jsonb', 'id'): 'CASE WHEN (typeof("id") <> \'text\' OR NOT json_valid("id") OR NOT EXISTS (SELECT 1 FROM '
                  'json_tree("id") WHERE type IS NOT NULL GROUP BY parent, key HAVING count(*) > 1)) THEN CASE WHEN '
                  'typeof("id") = \'text\' AND instr("id", char(0)) = 0 THEN \'"\' || replace("id", \'"\', \'""\') || '
                  '\'"\' WHEN "id" IS NULL THEN NULL WHEN typeof("id") = \'integer\' THEN "id" WHEN typeof("id") = '
                  '\'real\' THEN printf(\'%!.20e\', "id") ELSE \'refused,by dpro-migrate\' END ELSE \'refused,by '
                  "dpro-migrate' END",
 ('jsonb', 'a"b'): 'CASE WHEN (typeof("a""b") <> \'text\' OR NOT json_valid("a""b") OR NOT EXISTS (SELECT 1 FROM '
                   'json_tree("a""b") WHERE type IS NOT NULL GROUP BY parent, key HAVING count(*) > 1)) THEN CASE WHEN '
                   'typeof("a""b") = \'text\' AND instr("a""b", char(0)) = 0 THEN \'"\' || replace("a""b", \'"\', '
                   '\'""\') || \'"\' WHEN "a""b" IS NULL THEN NULL WHEN typeof("a""b") = \'integer\' THEN "a""b" WHEN '
                   'typeof("a""b") = \'real\' THEN printf(\'%!.20e\', "a""b") ELSE \'refused,by dpro-migrate\' END '
                   "ELSE 'refused,by dpro-migrate' END",
 ('jsonb', "it's; --"): 'CASE WHEN (typeof("it\'s; --") <> \'text\' OR NOT json_valid("it\'s; --") OR NOT EXISTS '
                        '(SELECT 1 FROM json_tree("it\'s; --") WHERE type IS NOT NULL GROUP BY parent, key HAVING '
                        'count(*) > 1)) THEN CASE WHEN typeof("it\'s; --") = \'text\' AND instr("it\'s; --", char(0)) '
                        '= 0 THEN \'"\' || replace("it\'s; --", \'"\', \'""\') || \'"\' WHEN "it\'s; --" IS NULL THEN '
                        'NULL WHEN typeof("it\'s; --") = \'integer\' THEN "it\'s; --" WHEN typeof("it\'s; --") = '
                        '\'real\' THEN printf(\'%!.20e\', "it\'s; --") ELSE \'refused,by dpro-migrate\' END ELSE '
                        "'refused,by dpro-migrate' END",
 ('text', 'id'): 'CASE WHEN typeof("id") = \'text\' AND instr("id", char(0)) = 0 THEN \'"\' || replace("id", \'"\', '
                 '\'""\') || \'"\' WHEN "id" IS NULL THEN NULL WHEN typeof("id") = \'integer\' THEN "id" WHEN '
                 'typeof("id") = \'real\' THEN printf(\'%!.20e\', "id") ELSE \'refused,by dpro-migrate\' END',
 ('text', 'a"b'): 'CASE WHEN typeof("a""b") = \'text\' AND instr("a""b", char(0)) = 0 THEN \'"\' || replace("a""b", '
                  '\'"\', \'""\') || \'"\' WHEN "a""b" IS NULL THEN NULL WHEN typeof("a""b") = \'integer\' THEN "a""b" '
                  'WHEN typeof("a""b") = \'real\' THEN printf(\'%!.20e\', "a""b") ELSE \'refused,by dpro-migrate\' END',
 ('text', "it's; --"): 'CASE WHEN typeof("it\'s; --") = \'text\' AND instr("it\'s; --", char(0)) = 0 THEN \'"\' || '
                       'replace("it\'s; --", \'"\', \'""\') || \'"\' WHEN "it\'s; --" IS NULL THEN NULL WHEN '
                       'typeof("it\'s; --") = \'integer\' THEN "it\'s; --" WHEN typeof("it\'s; --") = \'real\' THEN '
                       'printf(\'%!.20e\', "it\'s; --") ELSE \'refused,by dpro-migrate\' END',
 ('bytea', 'id'): 'CASE typeof("id") WHEN \'blob\' THEN \'\\x\' || hex("id") WHEN \'null\' THEN NULL ELSE \'refused,by '
                  "dpro-migrate' END",
 ('bytea', 'a"b'): 'CASE typeof("a""b") WHEN \'blob\' THEN \'\\x\' || hex("a""b") WHEN \'null\' THEN NULL ELSE '
                   "'refused,by dpro-migrate' END",
 ('bytea', "it's; --"): 'CASE typeof("it\'s; --") WHEN \'blob\' THEN \'\\x\' || hex("it\'s; --") WHEN \'null\' THEN '
                        "NULL ELSE 'refused,by dpro-migrate' END",
 ('numeric', 'id'): 'CASE typeof("id") WHEN \'integer\' THEN "id" WHEN \'real\' THEN coalesce(CASE WHEN "id" NOT '
                    "BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN NULL WHEN CAST(printf('%!.15g', "
                    '"id") AS REAL) = "id" THEN printf(\'%!.15g\', "id") WHEN CAST(printf(\'%!.16g\', "id") AS REAL) = '
                    '"id" THEN printf(\'%!.16g\', "id") WHEN CAST(printf(\'%!.17g\', "id") AS REAL) = "id" THEN '
                    'printf(\'%!.17g\', "id") END, \'refused,by dpro-migrate\') WHEN \'null\' THEN NULL ELSE '
                    "'refused,by dpro-migrate' END",
 ('numeric', 'a"b'): 'CASE typeof("a""b") WHEN \'integer\' THEN "a""b" WHEN \'real\' THEN coalesce(CASE WHEN "a""b" '
                     'NOT BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN NULL WHEN '
                     'CAST(printf(\'%!.15g\', "a""b") AS REAL) = "a""b" THEN printf(\'%!.15g\', "a""b") WHEN '
                     'CAST(printf(\'%!.16g\', "a""b") AS REAL) = "a""b" THEN printf(\'%!.16g\', "a""b") WHEN '
                     'CAST(printf(\'%!.17g\', "a""b") AS REAL) = "a""b" THEN printf(\'%!.17g\', "a""b") END, '
                     "'refused,by dpro-migrate') WHEN 'null' THEN NULL ELSE 'refused,by dpro-migrate' END",
 ('numeric', "it's; --"): 'CASE typeof("it\'s; --") WHEN \'integer\' THEN "it\'s; --" WHEN \'real\' THEN coalesce(CASE '
                          'WHEN "it\'s; --" NOT BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN NULL '
                          'WHEN CAST(printf(\'%!.15g\', "it\'s; --") AS REAL) = "it\'s; --" THEN printf(\'%!.15g\', '
                          '"it\'s; --") WHEN CAST(printf(\'%!.16g\', "it\'s; --") AS REAL) = "it\'s; --" THEN '
                          'printf(\'%!.16g\', "it\'s; --") WHEN CAST(printf(\'%!.17g\', "it\'s; --") AS REAL) = '
                          '"it\'s; --" THEN printf(\'%!.17g\', "it\'s; --") END, \'refused,by dpro-migrate\') WHEN '
                          "'null' THEN NULL ELSE 'refused,by dpro-migrate' END"}

# (class, VARCHAR length, column) -> predicate (SQLite SQL); was plan/preflight._type_ok
PREFLIGHT_OK = {('bigint', None, 'id'): 'typeof("id") IN (\'integer\', \'null\')',
 ('bigint', None, 'a"b'): 'typeof("a""b") IN (\'integer\', \'null\')',
 ('bigint', None, "it's; --"): 'typeof("it\'s; --") IN (\'integer\', \'null\')',
 ('double', None, 'id'): 'typeof("id") IN (\'integer\', \'real\', \'null\')',
 ('double', None, 'a"b'): 'typeof("a""b") IN (\'integer\', \'real\', \'null\')',
 ('double', None, "it's; --"): 'typeof("it\'s; --") IN (\'integer\', \'real\', \'null\')',
 ('boolean', None, 'id'): '("id" IS NULL OR (typeof("id") = \'integer\' AND "id" IN (0, 1)))',
 ('boolean', None, 'a"b'): '("a""b" IS NULL OR (typeof("a""b") = \'integer\' AND "a""b" IN (0, 1)))',
 ('boolean', None, "it's; --"): '("it\'s; --" IS NULL OR (typeof("it\'s; --") = \'integer\' AND "it\'s; --" IN (0, '
                                '1)))',
 ('timestamptz', None, 'id'): '("id" IS NULL OR (typeof("id") = \'text\' AND datetime("id", \'+0 seconds\') IS "id" '
                              'AND substr("id", 1, 4) <> \'0000\'))',
 ('timestamptz', None, 'a"b'): '("a""b" IS NULL OR (typeof("a""b") = \'text\' AND datetime("a""b", \'+0 seconds\') IS '
                               '"a""b" AND substr("a""b", 1, 4) <> \'0000\'))',
 ('timestamptz', None, "it's; --"): '("it\'s; --" IS NULL OR (typeof("it\'s; --") = \'text\' AND datetime("it\'s; --", '
                                    '\'+0 seconds\') IS "it\'s; --" AND substr("it\'s; --", 1, 4) <> \'0000\'))',
 ('jsonb', None, 'id'): '("id" IS NULL OR (typeof("id") IN (\'text\', \'integer\', \'real\') AND instr("id", char(0)) '
                        '= 0 AND (typeof("id") <> \'text\' OR dpro_valid_text(CAST("id" AS BLOB))) AND '
                        'json_valid("id") AND instr("id", \'\\u0000\') = 0 AND (typeof("id") <> \'text\' OR NOT '
                        'json_valid("id") OR NOT EXISTS (SELECT 1 FROM json_tree("id") WHERE type IS NOT NULL GROUP BY '
                        'parent, key HAVING count(*) > 1)) AND (instr(lower("id"), \'\\ud\') = 0 OR '
                        'dpro_paired_escapes(CAST("id" AS BLOB)))))',
 ('jsonb', None, 'a"b'): '("a""b" IS NULL OR (typeof("a""b") IN (\'text\', \'integer\', \'real\') AND instr("a""b", '
                         'char(0)) = 0 AND (typeof("a""b") <> \'text\' OR dpro_valid_text(CAST("a""b" AS BLOB))) AND '
                         'json_valid("a""b") AND instr("a""b", \'\\u0000\') = 0 AND (typeof("a""b") <> \'text\' OR NOT '
                         'json_valid("a""b") OR NOT EXISTS (SELECT 1 FROM json_tree("a""b") WHERE type IS NOT NULL '
                         'GROUP BY parent, key HAVING count(*) > 1)) AND (instr(lower("a""b"), \'\\ud\') = 0 OR '
                         'dpro_paired_escapes(CAST("a""b" AS BLOB)))))',
 ('jsonb', None, "it's; --"): '("it\'s; --" IS NULL OR (typeof("it\'s; --") IN (\'text\', \'integer\', \'real\') AND '
                              'instr("it\'s; --", char(0)) = 0 AND (typeof("it\'s; --") <> \'text\' OR '
                              'dpro_valid_text(CAST("it\'s; --" AS BLOB))) AND json_valid("it\'s; --") AND '
                              'instr("it\'s; --", \'\\u0000\') = 0 AND (typeof("it\'s; --") <> \'text\' OR NOT '
                              'json_valid("it\'s; --") OR NOT EXISTS (SELECT 1 FROM json_tree("it\'s; --") WHERE type '
                              'IS NOT NULL GROUP BY parent, key HAVING count(*) > 1)) AND (instr(lower("it\'s; --"), '
                              '\'\\ud\') = 0 OR dpro_paired_escapes(CAST("it\'s; --" AS BLOB)))))',
 ('text', None, 'id'): '("id" IS NULL OR (typeof("id") IN (\'text\', \'integer\', \'real\') AND instr("id", char(0)) = '
                       '0 AND (typeof("id") <> \'text\' OR dpro_valid_text(CAST("id" AS BLOB)))))',
 ('text', None, 'a"b'): '("a""b" IS NULL OR (typeof("a""b") IN (\'text\', \'integer\', \'real\') AND instr("a""b", '
                        'char(0)) = 0 AND (typeof("a""b") <> \'text\' OR dpro_valid_text(CAST("a""b" AS BLOB)))))',
 ('text', None, "it's; --"): '("it\'s; --" IS NULL OR (typeof("it\'s; --") IN (\'text\', \'integer\', \'real\') AND '
                             'instr("it\'s; --", char(0)) = 0 AND (typeof("it\'s; --") <> \'text\' OR '
                             'dpro_valid_text(CAST("it\'s; --" AS BLOB)))))',
 ('bytea', None, 'id'): 'typeof("id") IN (\'blob\', \'null\')',
 ('bytea', None, 'a"b'): 'typeof("a""b") IN (\'blob\', \'null\')',
 ('bytea', None, "it's; --"): 'typeof("it\'s; --") IN (\'blob\', \'null\')',
 ('text', 20, 'id'): '("id" IS NULL OR (typeof("id") IN (\'text\', \'integer\', \'real\') AND instr("id", char(0)) = 0 '
                     'AND (typeof("id") <> \'text\' OR dpro_valid_text(CAST("id" AS BLOB))) AND length(CASE typeof("id") WHEN \'real\' '
                     'THEN printf(\'%!.20e\', "id") ELSE "id" END) <= 20))',
 ('text', 20, 'a"b'): '("a""b" IS NULL OR (typeof("a""b") IN (\'text\', \'integer\', \'real\') AND instr("a""b", '
                      'char(0)) = 0 AND (typeof("a""b") <> \'text\' OR dpro_valid_text(CAST("a""b" AS BLOB))) AND '
                      'length(CASE typeof("a""b") WHEN \'real\' THEN printf(\'%!.20e\', "a""b") ELSE "a""b" END) <= 20))',
 ('text', 20, "it's; --"): '("it\'s; --" IS NULL OR (typeof("it\'s; --") IN (\'text\', \'integer\', \'real\') AND '
                           'instr("it\'s; --", char(0)) = 0 AND (typeof("it\'s; --") <> \'text\' OR '
                           'dpro_valid_text(CAST("it\'s; --" AS BLOB))) AND length(CASE typeof("it\'s; --") WHEN \'real\' '
                           'THEN printf(\'%!.20e\', "it\'s; --") ELSE "it\'s; --" END) <= 20))',
 ('numeric', None, 'id'): '("id" IS NULL OR (typeof("id") = \'integer\' AND 1) OR (typeof("id") = \'real\' AND CASE '
                          'WHEN "id" NOT BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN NULL WHEN '
                          'CAST(printf(\'%!.15g\', "id") AS REAL) = "id" THEN printf(\'%!.15g\', "id") WHEN '
                          'CAST(printf(\'%!.16g\', "id") AS REAL) = "id" THEN printf(\'%!.16g\', "id") WHEN '
                          'CAST(printf(\'%!.17g\', "id") AS REAL) = "id" THEN printf(\'%!.17g\', "id") END IS NOT NULL '
                          'AND 1))',
 ('numeric', None, 'a"b'): '("a""b" IS NULL OR (typeof("a""b") = \'integer\' AND 1) OR (typeof("a""b") = \'real\' AND '
                           'CASE WHEN "a""b" NOT BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN NULL '
                           'WHEN CAST(printf(\'%!.15g\', "a""b") AS REAL) = "a""b" THEN printf(\'%!.15g\', "a""b") '
                           'WHEN CAST(printf(\'%!.16g\', "a""b") AS REAL) = "a""b" THEN printf(\'%!.16g\', "a""b") '
                           'WHEN CAST(printf(\'%!.17g\', "a""b") AS REAL) = "a""b" THEN printf(\'%!.17g\', "a""b") END '
                           'IS NOT NULL AND 1))',
 ('numeric', None, "it's; --"): '("it\'s; --" IS NULL OR (typeof("it\'s; --") = \'integer\' AND 1) OR (typeof("it\'s; '
                                '--") = \'real\' AND CASE WHEN "it\'s; --" NOT BETWEEN -1.7976931348623157e308 AND '
                                '1.7976931348623157e308 THEN NULL WHEN CAST(printf(\'%!.15g\', "it\'s; --") AS REAL) = '
                                '"it\'s; --" THEN printf(\'%!.15g\', "it\'s; --") WHEN CAST(printf(\'%!.16g\', "it\'s; '
                                '--") AS REAL) = "it\'s; --" THEN printf(\'%!.16g\', "it\'s; --") WHEN '
                                'CAST(printf(\'%!.17g\', "it\'s; --") AS REAL) = "it\'s; --" THEN printf(\'%!.17g\', '
                                '"it\'s; --") END IS NOT NULL AND 1))'}

# (class, column) -> write-back (PostgreSQL SQL); backends/postgres._as_sqlite_sql's
WRITE_BACK = {('bigint', 'id'): '"id"',
 ('bigint', 'a"b'): '"a""b"',
 ('bigint', "it's; --"): '"it\'s; --"',
 ('double', 'id'): '"id"',
 ('double', 'a"b'): '"a""b"',
 ('double', "it's; --"): '"it\'s; --"',
 ('boolean', 'id'): '"id"::int',
 ('boolean', 'a"b'): '"a""b"::int',
 ('boolean', "it's; --"): '"it\'s; --"::int',
 ('timestamptz', 'id'): ('CASE WHEN NOT isfinite("id") OR "id" AT TIME ZONE \'UTC\' < \'0001-01-01\' THEN "id"::text WHE'
                              'N "id" = date_trunc(\'second\', "id") THEN to_char("id" AT TIME ZONE \'UTC\', \'YYYY-MM-DD HH24'
                              ':MI:SS\') ELSE rtrim(to_char("id" AT TIME ZONE \'UTC\', \'YYYY-MM-DD HH24:MI:SS.US\'), \'0\') END'),
 ('timestamptz', 'a"b'): ('CASE WHEN NOT isfinite("a""b") OR "a""b" AT TIME ZONE \'UTC\' < \'0001-01-01\' THEN "a""b"::te'
                              'xt WHEN "a""b" = date_trunc(\'second\', "a""b") THEN to_char("a""b" AT TIME ZONE \'UTC\', \'YYY'
                              'Y-MM-DD HH24:MI:SS\') ELSE rtrim(to_char("a""b" AT TIME ZONE \'UTC\', \'YYYY-MM-DD HH24:MI:SS.'
                              "US'), '0') END"),
 ('timestamptz', "it's; --"): ('CASE WHEN NOT isfinite("it\'s; --") OR "it\'s; --" AT TIME ZONE \'UTC\' < \'0001-01-01\' THEN "i'
                              't\'s; --"::text WHEN "it\'s; --" = date_trunc(\'second\', "it\'s; --") THEN to_char("it\'s; --" '
                              'AT TIME ZONE \'UTC\', \'YYYY-MM-DD HH24:MI:SS\') ELSE rtrim(to_char("it\'s; --" AT TIME ZONE \'U'
                              "TC', 'YYYY-MM-DD HH24:MI:SS.US'), '0') END"),
 ('jsonb', 'id'): '"id"::text',
 ('jsonb', 'a"b'): '"a""b"::text',
 ('jsonb', "it's; --"): '"it\'s; --"::text',
 ('text', 'id'): '"id"',
 ('text', 'a"b'): '"a""b"',
 ('text', "it's; --"): '"it\'s; --"',
 ('bytea', 'id'): '"id"',
 ('bytea', 'a"b'): '"a""b"',
 ('bytea', "it's; --"): '"it\'s; --"',
 ('numeric', 'id'): '"id"::text',
 ('numeric', 'a"b'): '"a""b"::text',
 ('numeric', "it's; --"): '"it\'s; --"::text'}

# ddl/ type -> (class, SQLite declaration, SQLAlchemy type, compiled on SQLite, compiled on PostgreSQL);
# was plan/copy_lines.type_class, dialects/sqlite.SQLITE_TYPES (transform); handoff.sa_type's
DDL = {'BIGINT': ('bigint', 'INTEGER', 'BigInteger()', 'INTEGER', 'BIGINT'),
 'INT': ('bigint', 'INTEGER', 'Integer()', 'INTEGER', 'INTEGER'),
 'DOUBLE PRECISION': ('double', 'REAL', 'Double()', 'REAL', 'DOUBLE PRECISION'),
 'BOOLEAN': ('boolean', 'BOOLEAN', 'Boolean()', 'BOOLEAN', 'BOOLEAN'),
 'TIMESTAMPTZ': ('timestamptz', 'TIMESTAMP', 'TIMESTAMP(timezone=True)', 'TIMESTAMP', 'TIMESTAMP WITH TIME ZONE'),
 'TIMESTAMP': ('timestamptz', 'TIMESTAMP', 'TIMESTAMP()', 'TIMESTAMP', 'TIMESTAMP WITHOUT TIME ZONE'),
 'JSONB': ('jsonb', 'JSON', 'JSON()', 'JSON', 'JSONB'),
 'JSON': ('jsonb', 'JSON', 'JSON()', 'JSON', 'JSON'),
 'TEXT': ('text', 'TEXT', 'Text()', 'TEXT', 'TEXT'),
 'VARCHAR(50)': ('text', 'VARCHAR(50)', 'String(length=50)', 'VARCHAR(50)', 'VARCHAR(50)'),
 'BYTEA': ('bytea', 'BLOB', 'LargeBinary()', 'BLOB', 'BYTEA'),
 'NUMERIC(10,2)': ('numeric', 'NUMERIC(10, 2)', 'Numeric(precision=10, scale=2)', 'NUMERIC(10, 2)', 'NUMERIC(10, 2)')}

# PostgreSQL type name -> class; was plan/copy_lines.type_class
PG_CLASS = {'BIGINT': 'bigint',
 'bigint': 'bigint',
 'INT': 'bigint',
 'INTEGER': 'bigint',
 'SMALLINT': 'bigint',
 'DOUBLE PRECISION': 'double',
 'double': 'double',
 'REAL': 'double',
 'FLOAT': 'double',
 'FLOAT8': 'text',
 'BOOLEAN': 'boolean',
 'bool': 'text',
 'TIMESTAMPTZ': 'timestamptz',
 'TIMESTAMP': 'timestamptz',
 'timestamp with time zone': 'timestamptz',
 'JSONB': 'jsonb',
 'JSON': 'jsonb',
 'BYTEA': 'bytea',
 'TEXT': 'text',
 'VARCHAR(20)': 'text',
 'CHAR(3)': 'text',
 'NUMERIC(10, 2)': 'numeric',
 'DATE': 'text',
 'UUID': 'text',
 '': 'text',
 'NUMERIC': 'numeric',
 'numeric(10,2)': 'numeric',
 'DECIMAL(10, 2)': 'numeric'}

VARCHAR_LENGTH = {'VARCHAR(20)': 20,
 'varchar(255)': 255,
 'VARCHAR': None,
 'TEXT': None,
 'CHARACTER VARYING(3)': None,
 'VARCHAR(20) ': 20}

# legacy declared type -> (SQLite affinity, PostgreSQL type); was dialects/postgresql.sqlite_affinity, pg_type_for_legacy
LEGACY = {'INTEGER': ('INTEGER', 'BIGINT'),
 'INT': ('INTEGER', 'BIGINT'),
 'BIGINT': ('INTEGER', 'BIGINT'),
 'TINYINT': ('INTEGER', 'BIGINT'),
 'int8': ('INTEGER', 'BIGINT'),
 'TEXT': ('TEXT', 'TEXT'),
 'VARCHAR(50)': ('TEXT', 'TEXT'),
 'varchar(10)': ('TEXT', 'TEXT'),
 'CHAR(2)': ('TEXT', 'TEXT'),
 'CLOB': ('TEXT', 'TEXT'),
 'NVARCHAR(5)': ('TEXT', 'TEXT'),
 'BLOB': ('BLOB', 'BYTEA'),
 '': ('BLOB', 'BYTEA'),
 ' ': ('BLOB', 'BYTEA'),
 'REAL': ('REAL', 'DOUBLE PRECISION'),
 'FLOAT': ('REAL', 'DOUBLE PRECISION'),
 'DOUBLE': ('REAL', 'DOUBLE PRECISION'),
 'DOUBLE PRECISION': ('REAL', 'DOUBLE PRECISION'),
 'BOOLEAN': ('NUMERIC', 'BOOLEAN'),
 'boolean': ('NUMERIC', 'BOOLEAN'),
 'BOOL': ('NUMERIC', 'TEXT'),
 'TIMESTAMP': ('NUMERIC', 'TIMESTAMPTZ'),
 'timestamp': ('NUMERIC', 'TIMESTAMPTZ'),
 'DATETIME': ('NUMERIC', 'TIMESTAMPTZ'),
 'DATE': ('NUMERIC', 'TEXT'),
 'JSON': ('NUMERIC', 'JSONB'),
 'json': ('NUMERIC', 'JSONB'),
 'JSONB': ('NUMERIC', 'TEXT'),
 'NUMERIC': ('NUMERIC', 'NUMERIC'),
 'DECIMAL(10,2)': ('NUMERIC', 'NUMERIC(10,2)'),
 'POINT': ('INTEGER', 'BIGINT'),
 'CHARINT': ('INTEGER', 'BIGINT'),
 'FLOATING POINT': ('INTEGER', 'BIGINT'),
 'TIMESTAMP(6)': ('NUMERIC', 'TIMESTAMPTZ'),
 'BOOLEAN (1)': ('NUMERIC', 'BOOLEAN'),
 'DECIMAL': ('NUMERIC', 'NUMERIC'),
 'decimal(5)': ('NUMERIC', 'NUMERIC(5,0)'),
 'NUMERIC(10, 4)': ('NUMERIC', 'NUMERIC(10,4)')}

# was plan/copy_lines.CONVERSIONS
CONVERSIONS = {'bigint': 'integer, unchanged',
 'double': 'real, every bit kept (printed with 21 significant digits)',
 'boolean': '1/0 -> true/false',
 'timestamptz': "text 'YYYY-MM-DD HH:MM:SS' read as UTC -> timestamptz",
 'jsonb': 'JSON text -> jsonb (keys reordered, whitespace normalised by PostgreSQL)',
 'text': 'text, unchanged',
 'bytea': 'blob -> bytea',
 'numeric': "integer or real -> numeric: the decimal that reads back as the same real, at the column's scale (a value "
            'that does not fit the precision and scale is refused)'}


def test_every_class_is_covered():
    assert list(TYPE_CLASSES) == list(CONVERSIONS)
    assert {k for k, _ in COPY_FIELD} == {k for k, _ in WRITE_BACK} == {k for k, _, _ in PREFLIGHT_OK} == set(TYPE_CLASSES)
    assert {k for k, _, _, _, _ in DDL.values()} == set(TYPE_CLASSES)


def test_conversions():
    assert {name: cls.conversion for name, cls in TYPE_CLASSES.items()} == CONVERSIONS


@pytest.mark.parametrize("key", list(COPY_FIELD), ids=repr)
def test_copy_field(key):
    cls, column = key
    assert TYPE_CLASSES[cls].copy_field(column) == COPY_FIELD[key]


@pytest.mark.parametrize("key", list(PREFLIGHT_OK), ids=repr)
def test_preflight_ok(key):
    cls, length, column = key
    assert TYPE_CLASSES[cls].preflight_ok(column, length) == PREFLIGHT_OK[key]


@pytest.mark.parametrize("key", list(WRITE_BACK), ids=repr)
def test_write_back(key):
    cls, column = key
    assert TYPE_CLASSES[cls].write_back(column) == WRITE_BACK[key]


@pytest.mark.parametrize("ddl", list(DDL))
def test_ddl_type(ddl):
    cls, declared, sa_repr, on_sqlite, on_postgres = DDL[ddl]
    node = exp.DataType.build(ddl, dialect="postgres")
    assert type_class_of_ddl(node).name == cls
    assert type_class_of_pg(node.sql("postgres")).name == cls
    assert sqlite_declared_type(node) == declared
    sa_type = type_class_of_ddl(node).sa_type(node)
    assert repr(sa_type) == sa_repr
    assert str(sa_type.compile(dialect=sqlite.dialect())) == on_sqlite
    assert str(sa_type.compile(dialect=postgresql.dialect())) == on_postgres


def test_pg_type_names():
    assert {t: type_class_of_pg(t).name for t in PG_CLASS} == PG_CLASS
    assert {t: varchar_length(t) for t in VARCHAR_LENGTH} == VARCHAR_LENGTH


def test_legacy_declared_types():
    assert {d: (sqlite_affinity(d), pg_type_for_legacy(d)) for d in LEGACY} == LEGACY


def test_the_table_agrees_with_itself():
    """Each class's declarations have its affinity, and its PostgreSQL type and legacy names lead back to it."""
    for cls in TYPE_CLASSES.values():
        assert {sqlite_affinity(d) for d in cls.ddl_types.values()} == {cls.sqlite_affinity}, cls.name
        assert type_class_of_pg(cls.pg_type) is cls
        assert type_class_of_ddl(exp.DataType.build(cls.pg_type, dialect="postgres")) is cls
        for name in cls.legacy_names:
            assert type_class_of_legacy(name) is cls


def test_a_ddl_type_without_a_class_is_refused():
    with pytest.raises(BadInput, match="UUID"):
        type_class_of_ddl(exp.DataType.build("UUID", dialect="postgres"))
