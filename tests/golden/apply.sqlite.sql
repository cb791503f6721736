-- dpro-migrate 0.1.0: apply <DIR>/dpro_agent.db (sqlite:in-place)
.bail on
-- with foreign keys on, DROP TABLE would cascade; it cannot change inside a transaction
PRAGMA foreign_keys = OFF;
-- the backup (dpro-migrate copies the file with the online backup API instead, and checks the copy before it commits)
VACUUM INTO '<DIR>/dpro_agent.db.before-dpro-migrate.bak';
BEGIN IMMEDIATE;
CREATE TEMP TABLE dpro_apply_counts (kind TEXT NOT NULL, legacy TEXT NOT NULL, rows INTEGER);
CREATE TEMP TABLE dpro_apply_checks (check_name TEXT NOT NULL, ok INTEGER NOT NULL CHECK (ok));
-- rows in the source, per legacy table
INSERT INTO temp.dpro_apply_counts SELECT 'source', 'users', count(*) FROM "users" UNION ALL SELECT 'source', 'user_settings', count(*) FROM "user_settings" UNION ALL SELECT 'source', 'user_profiles', count(*) FROM "user_profiles" UNION ALL SELECT 'source', 'user_sessions', count(*) FROM "user_sessions" UNION ALL SELECT 'source', 'activity_logs', count(*) FROM "activity_logs" UNION ALL SELECT 'source', 'agents', count(*) FROM "agents" UNION ALL SELECT 'source', 'conversations', count(*) FROM "conversations" UNION ALL SELECT 'source', 'messages', count(*) FROM "messages" UNION ALL SELECT 'source', 'chat_session_history', count(*) FROM "chat_session_history" UNION ALL SELECT 'source', 'boards', count(*) FROM "boards" UNION ALL SELECT 'source', 'board_nodes', count(*) FROM "board_nodes" UNION ALL SELECT 'source', 'board_connections', count(*) FROM "board_connections" UNION ALL SELECT 'source', 'board_executions', count(*) FROM "board_executions" UNION ALL SELECT 'source', 'board_templates', count(*) FROM "board_templates" UNION ALL SELECT 'source', 'workflows', count(*) FROM "workflows" UNION ALL SELECT 'source', 'tasks', count(*) FROM "tasks" UNION ALL SELECT 'source', 'system_info', count(*) FROM "system_info" UNION ALL SELECT 'source', 'marketplace_tools', count(*) FROM "marketplace_tools";
-- the legacy AUTOINCREMENT counters, for rollback
CREATE TEMP TABLE dpro_legacy_sequences AS SELECT name, seq FROM sqlite_sequence WHERE name IN ('users', 'user_settings', 'user_profiles', 'user_sessions', 'activity_logs', 'agents', 'conversations', 'messages', 'chat_session_history', 'boards', 'board_nodes', 'board_connections', 'board_executions', 'board_templates', 'workflows', 'tasks', 'system_info', 'marketplace_tools');
-- + table iam_users
CREATE TABLE "iam_users" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "username" VARCHAR(50) NOT NULL,
  "email" VARCHAR(100) NOT NULL,
  "password_hash" VARCHAR(255) NOT NULL,
  "full_name" VARCHAR(100),
  "is_active" BOOLEAN DEFAULT 1,
  "is_admin" BOOLEAN DEFAULT 0,
  "subscription_type" VARCHAR(20) DEFAULT 'free',
  "preferences" JSON,
  "last_login" TIMESTAMP,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "nickname" VARCHAR(40),
  CONSTRAINT "uq_users_username" UNIQUE ("username"),
  CONSTRAINT "uq_users_email" UNIQUE ("email"),
  CONSTRAINT "chk_users_email_format" CHECK ("email" LIKE '%@%.%'),
  CONSTRAINT "chk_users_username_length" CHECK (LENGTH("username") >= 3)
);
-- + table iam_user_preferences
CREATE TABLE "iam_user_preferences" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER NOT NULL,
  "theme" VARCHAR(20) DEFAULT 'light',
  "language" VARCHAR(10) DEFAULT 'en',
  "timezone" VARCHAR(50) DEFAULT 'UTC',
  "notifications_enabled" BOOLEAN DEFAULT 1,
  "settings" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_user_preferences_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE CASCADE
);
-- + table iam_user_profiles
CREATE TABLE "iam_user_profiles" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER NOT NULL,
  "display_name" VARCHAR(100),
  "bio" TEXT,
  "avatar_url" TEXT,
  "learning_style" VARCHAR(50),
  "preferred_language" VARCHAR(10) DEFAULT 'en',
  "profile_data" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_user_profiles_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE CASCADE
);
-- + table iam_user_sessions
CREATE TABLE "iam_user_sessions" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER NOT NULL,
  "session_token" VARCHAR(255) NOT NULL,
  "device_info" JSON,
  "ip_address" VARCHAR(45),
  "expires_at" TIMESTAMP NOT NULL,
  "is_active" BOOLEAN DEFAULT 1,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "uq_user_sessions_session_token" UNIQUE ("session_token"),
  CONSTRAINT "fk_user_sessions_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE CASCADE
);
-- + table iam_authentication_logs
CREATE TABLE "iam_authentication_logs" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER,
  "action" VARCHAR(100) NOT NULL,
  "resource_type" VARCHAR(50),
  "resource_id" INTEGER,
  "details" JSON,
  "ip_address" VARCHAR(45),
  "user_agent" TEXT,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_authentication_logs_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE SET NULL
);
-- + table ai_agents_agents
CREATE TABLE "ai_agents_agents" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER NOT NULL,
  "parent_agent_id" INTEGER,
  "name" VARCHAR(100) NOT NULL,
  "description" TEXT,
  "agent_type" VARCHAR(50) DEFAULT 'general',
  "model_provider" VARCHAR(30),
  "model_name" VARCHAR(50),
  "configuration" JSON,
  "system_prompt" TEXT,
  "temperature" REAL DEFAULT 0.7,
  "max_tokens" INTEGER DEFAULT 4000,
  "performance_score" REAL DEFAULT 0.0,
  "is_active" BOOLEAN DEFAULT 1,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "success_rate" REAL,
  CONSTRAINT "chk_agents_temperature_range" CHECK ("temperature" >= 0.0 AND "temperature" <= 2.0),
  CONSTRAINT "chk_agents_performance_range" CHECK ("performance_score" >= 0.0 AND "performance_score" <= 1.0),
  CONSTRAINT "chk_agents_success_rate_range" CHECK ("success_rate" >= 0.0 AND "success_rate" <= 1.0),
  CONSTRAINT "fk_agents_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE CASCADE,
  CONSTRAINT "fk_agents_parent" FOREIGN KEY ("parent_agent_id") REFERENCES "ai_agents_agents" ("id") ON DELETE SET NULL
);
-- + table communication_conversations
CREATE TABLE "communication_conversations" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER NOT NULL,
  "agent_id" INTEGER,
  "title" VARCHAR(200),
  "is_active" BOOLEAN DEFAULT 1,
  "metadata" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "satisfaction_rating" INTEGER,
  CONSTRAINT "chk_conversations_satisfaction_rating" CHECK ("satisfaction_rating" >= 1 AND "satisfaction_rating" <= 5),
  CONSTRAINT "fk_conversations_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE CASCADE,
  CONSTRAINT "fk_conversations_agent" FOREIGN KEY ("agent_id") REFERENCES "ai_agents_agents" ("id") ON DELETE SET NULL
);
-- + table communication_messages
CREATE TABLE "communication_messages" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "conversation_id" INTEGER NOT NULL,
  "user_id" INTEGER,
  "agent_id" INTEGER,
  "sender_type" VARCHAR(10) NOT NULL,
  "content" TEXT NOT NULL,
  "message_type" VARCHAR(20) DEFAULT 'text',
  "tokens_used" INTEGER DEFAULT 0,
  "response_time_ms" INTEGER,
  "metadata" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "sentiment" REAL,
  CONSTRAINT "fk_messages_conversation" FOREIGN KEY ("conversation_id") REFERENCES "communication_conversations" ("id") ON DELETE CASCADE,
  CONSTRAINT "fk_messages_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE SET NULL,
  CONSTRAINT "fk_messages_agent" FOREIGN KEY ("agent_id") REFERENCES "ai_agents_agents" ("id") ON DELETE SET NULL
);
-- + table communication_chat_session_history
CREATE TABLE "communication_chat_session_history" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "session_id" VARCHAR(64) NOT NULL,
  "conversation_id" INTEGER,
  "user_id" INTEGER,
  "event" VARCHAR(50) NOT NULL,
  "payload" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_chat_history_conversation" FOREIGN KEY ("conversation_id") REFERENCES "communication_conversations" ("id") ON DELETE SET NULL,
  CONSTRAINT "fk_chat_history_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE SET NULL
);
-- + table workflow_boards
CREATE TABLE "workflow_boards" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER NOT NULL,
  "name" VARCHAR(200) NOT NULL,
  "description" TEXT,
  "board_type" VARCHAR(50) DEFAULT 'workflow',
  "is_public" BOOLEAN DEFAULT 0,
  "config" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_boards_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE CASCADE
);
-- + table workflow_board_nodes
CREATE TABLE "workflow_board_nodes" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "board_id" INTEGER NOT NULL,
  "node_type" VARCHAR(50) NOT NULL,
  "label" VARCHAR(200),
  "position_x" REAL DEFAULT 0,
  "position_y" REAL DEFAULT 0,
  "config" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_board_nodes_board" FOREIGN KEY ("board_id") REFERENCES "workflow_boards" ("id") ON DELETE CASCADE
);
-- + table workflow_board_connections
CREATE TABLE "workflow_board_connections" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "board_id" INTEGER NOT NULL,
  "source_node_id" INTEGER NOT NULL,
  "target_node_id" INTEGER NOT NULL,
  "condition" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_board_connections_board" FOREIGN KEY ("board_id") REFERENCES "workflow_boards" ("id") ON DELETE CASCADE,
  CONSTRAINT "fk_board_connections_source" FOREIGN KEY ("source_node_id") REFERENCES "workflow_board_nodes" ("id") ON DELETE CASCADE,
  CONSTRAINT "fk_board_connections_target" FOREIGN KEY ("target_node_id") REFERENCES "workflow_board_nodes" ("id") ON DELETE CASCADE
);
-- + table workflow_board_executions
CREATE TABLE "workflow_board_executions" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "board_id" INTEGER NOT NULL,
  "user_id" INTEGER,
  "status" VARCHAR(20) DEFAULT 'running',
  "input_data" JSON,
  "output_data" JSON,
  "error_message" TEXT,
  "started_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "finished_at" TIMESTAMP,
  CONSTRAINT "fk_board_executions_board" FOREIGN KEY ("board_id") REFERENCES "workflow_boards" ("id") ON DELETE CASCADE,
  CONSTRAINT "fk_board_executions_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE SET NULL
);
-- + table workflow_board_templates
CREATE TABLE "workflow_board_templates" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "name" VARCHAR(200) NOT NULL,
  "description" TEXT,
  "category" VARCHAR(50),
  "template_data" JSON,
  "is_public" BOOLEAN DEFAULT 1,
  "created_by" INTEGER,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_board_templates_created_by" FOREIGN KEY ("created_by") REFERENCES "iam_users" ("id") ON DELETE SET NULL
);
-- + table workflow_workflows
CREATE TABLE "workflow_workflows" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "board_id" INTEGER,
  "user_id" INTEGER NOT NULL,
  "name" VARCHAR(200) NOT NULL,
  "status" VARCHAR(20) DEFAULT 'draft',
  "definition" JSON,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT "fk_workflows_board" FOREIGN KEY ("board_id") REFERENCES "workflow_boards" ("id") ON DELETE SET NULL,
  CONSTRAINT "fk_workflows_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE CASCADE
);
-- + table tasks_tasks
CREATE TABLE "tasks_tasks" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER NOT NULL,
  "assigned_to" INTEGER,
  "agent_id" INTEGER,
  "title" VARCHAR(200) NOT NULL,
  "description" TEXT,
  "status" VARCHAR(20) DEFAULT 'pending',
  "priority" VARCHAR(10) DEFAULT 'medium',
  "category" VARCHAR(50),
  "due_date" TIMESTAMP,
  "completed_at" TIMESTAMP,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "completion_percentage" INTEGER DEFAULT 0,
  CONSTRAINT "chk_tasks_priority_values" CHECK ("priority" IN ('low', 'medium', 'high', 'urgent')),
  CONSTRAINT "chk_tasks_status_values" CHECK ("status" IN ('pending', 'in_progress', 'completed', 'cancelled')),
  CONSTRAINT "chk_tasks_completion_percentage" CHECK ("completion_percentage" >= 0 AND "completion_percentage" <= 100),
  CONSTRAINT "fk_tasks_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE CASCADE,
  CONSTRAINT "fk_tasks_assigned_to" FOREIGN KEY ("assigned_to") REFERENCES "iam_users" ("id") ON DELETE SET NULL,
  CONSTRAINT "fk_tasks_agent" FOREIGN KEY ("agent_id") REFERENCES "ai_agents_agents" ("id") ON DELETE SET NULL
);
-- + table system_configurations
CREATE TABLE "system_configurations" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "key" VARCHAR(100) NOT NULL,
  "value" TEXT,
  "category" VARCHAR(50),
  "description" TEXT,
  "is_public" BOOLEAN DEFAULT 0,
  "updated_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "last_modified_by" INTEGER,
  CONSTRAINT "uq_configurations_key" UNIQUE ("key"),
  CONSTRAINT "fk_configurations_last_modified_by" FOREIGN KEY ("last_modified_by") REFERENCES "iam_users" ("id") ON DELETE SET NULL
);
-- + table system_audit_logs
CREATE TABLE "system_audit_logs" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "user_id" INTEGER,
  "action" VARCHAR(100) NOT NULL,
  "resource_type" VARCHAR(50),
  "resource_id" INTEGER,
  "details" JSON,
  "ip_address" VARCHAR(45),
  "user_agent" TEXT,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  "log_level" VARCHAR(10) DEFAULT 'info',
  CONSTRAINT "chk_audit_logs_log_level" CHECK ("log_level" IN ('debug', 'info', 'warning', 'error', 'critical')),
  CONSTRAINT "fk_audit_logs_user" FOREIGN KEY ("user_id") REFERENCES "iam_users" ("id") ON DELETE SET NULL
);
-- + table marketplace_tools
CREATE TABLE "marketplace_tools__dpro_new" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT,
  "name" VARCHAR(200) NOT NULL,
  "description" TEXT,
  "category" VARCHAR(50),
  "version" VARCHAR(20),
  "author" VARCHAR(100),
  "rating" REAL DEFAULT 0,
  "download_count" INTEGER DEFAULT 0,
  "is_active" BOOLEAN DEFAULT 1,
  "is_verified" BOOLEAN DEFAULT 0,
  "created_at" TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
-- - drop legacy trigger trg_legacy_tasks_touch
DROP TRIGGER "trg_legacy_tasks_touch";
-- - drop legacy view active_users
DROP VIEW "active_users";
-- > move rows users -> iam.users
INSERT INTO "iam_users" ("id", "username", "email", "password_hash", "full_name", "is_active", "is_admin", "subscription_type", "preferences", "last_login", "created_at", "updated_at", "nickname") SELECT "id", "username", "email", "password_hash", "full_name", "is_active", "is_admin", "subscription_type", "preferences", "last_login", "created_at", "updated_at", "nickname" FROM "users";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'users', changes());
-- ~ continue the id counter of iam_users
DELETE FROM "sqlite_sequence" WHERE "name" = 'iam_users' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'users') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'iam_users', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'users'), 0), coalesce((SELECT max("id") FROM "iam_users"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'users') IS NOT NULL;
-- > move rows user_settings -> iam.user_preferences
INSERT INTO "iam_user_preferences" ("id", "user_id", "theme", "language", "timezone", "notifications_enabled", "settings", "created_at", "updated_at") SELECT "id", "user_id", "theme", "language", "timezone", "notifications_enabled", "settings", "created_at", "updated_at" FROM "user_settings";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'user_settings', changes());
-- ~ continue the id counter of iam_user_preferences
DELETE FROM "sqlite_sequence" WHERE "name" = 'iam_user_preferences' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_settings') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'iam_user_preferences', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_settings'), 0), coalesce((SELECT max("id") FROM "iam_user_preferences"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_settings') IS NOT NULL;
-- > move rows user_profiles -> iam.user_profiles
INSERT INTO "iam_user_profiles" ("id", "user_id", "display_name", "bio", "avatar_url", "learning_style", "preferred_language", "profile_data", "created_at", "updated_at") SELECT "id", "user_id", "display_name", "bio", "avatar_url", "learning_style", "preferred_language", "profile_data", "created_at", "updated_at" FROM "user_profiles";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'user_profiles', changes());
-- ~ continue the id counter of iam_user_profiles
DELETE FROM "sqlite_sequence" WHERE "name" = 'iam_user_profiles' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_profiles') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'iam_user_profiles', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_profiles'), 0), coalesce((SELECT max("id") FROM "iam_user_profiles"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_profiles') IS NOT NULL;
-- > move rows user_sessions -> iam.user_sessions
INSERT INTO "iam_user_sessions" ("id", "user_id", "session_token", "device_info", "ip_address", "expires_at", "is_active", "created_at") SELECT "id", "user_id", "session_token", "device_info", "ip_address", "expires_at", "is_active", "created_at" FROM "user_sessions";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'user_sessions', changes());
-- ~ continue the id counter of iam_user_sessions
DELETE FROM "sqlite_sequence" WHERE "name" = 'iam_user_sessions' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_sessions') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'iam_user_sessions', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_sessions'), 0), coalesce((SELECT max("id") FROM "iam_user_sessions"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'user_sessions') IS NOT NULL;
-- > move rows activity_logs -> iam.authentication_logs where (action LIKE '%login%' OR action LIKE '%auth%') IS 1
INSERT INTO "iam_authentication_logs" ("id", "user_id", "action", "resource_type", "resource_id", "details", "ip_address", "user_agent", "created_at") SELECT "id", "user_id", "action", "resource_type", "resource_id", "details", "ip_address", "user_agent", "created_at" FROM "activity_logs" WHERE (action LIKE '%login%' OR action LIKE '%auth%') IS 1;
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'activity_logs', changes());
-- ~ continue the id counter of iam_authentication_logs
DELETE FROM "sqlite_sequence" WHERE "name" = 'iam_authentication_logs' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'activity_logs') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'iam_authentication_logs', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'activity_logs'), 0), coalesce((SELECT max("id") FROM "iam_authentication_logs"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'activity_logs') IS NOT NULL;
-- > move rows activity_logs -> system.audit_logs where NOT ((action LIKE '%login%' OR action LIKE '%auth%') IS 1) (derived: log_level = CASE WHEN typeof("details") = 'text' THEN CASE WHEN json_valid("details") THEN CASE WHEN json_type("details") = 'object' THEN CASE WHEN json_extract("details", '$.log_level') IN ('debug', 'info', 'warning', 'error', 'critical') THEN json_extract("details", '$.log_level') WHEN json_extract("details", '$.level') IN ('debug', 'info', 'warning', 'error', 'critical') THEN json_extract("details", '$.level') END END END END)
INSERT INTO "system_audit_logs" ("id", "user_id", "action", "resource_type", "resource_id", "details", "ip_address", "user_agent", "created_at", "log_level") SELECT "id", "user_id", "action", "resource_type", "resource_id", "details", "ip_address", "user_agent", "created_at", CASE WHEN typeof("details") = 'text' THEN CASE WHEN json_valid("details") THEN CASE WHEN json_type("details") = 'object' THEN CASE WHEN json_extract("details", '$.log_level') IN ('debug', 'info', 'warning', 'error', 'critical') THEN json_extract("details", '$.log_level') WHEN json_extract("details", '$.level') IN ('debug', 'info', 'warning', 'error', 'critical') THEN json_extract("details", '$.level') END END END END FROM "activity_logs" WHERE NOT ((action LIKE '%login%' OR action LIKE '%auth%') IS 1);
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'activity_logs', changes());
-- ~ continue the id counter of system_audit_logs
DELETE FROM "sqlite_sequence" WHERE "name" = 'system_audit_logs' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'activity_logs') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'system_audit_logs', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'activity_logs'), 0), coalesce((SELECT max("id") FROM "system_audit_logs"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'activity_logs') IS NOT NULL;
-- > move rows agents -> ai_agents.agents
INSERT INTO "ai_agents_agents" ("id", "user_id", "parent_agent_id", "name", "description", "agent_type", "model_provider", "model_name", "configuration", "system_prompt", "temperature", "max_tokens", "performance_score", "is_active", "created_at", "updated_at") SELECT "id", "user_id", "parent_agent_id", "name", "description", "agent_type", "model_provider", "model_name", "configuration", "system_prompt", "temperature", "max_tokens", "performance_score", "is_active", "created_at", "updated_at" FROM "agents";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'agents', changes());
-- ~ continue the id counter of ai_agents_agents
DELETE FROM "sqlite_sequence" WHERE "name" = 'ai_agents_agents' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'agents') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'ai_agents_agents', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'agents'), 0), coalesce((SELECT max("id") FROM "ai_agents_agents"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'agents') IS NOT NULL;
-- > move rows conversations -> communication.conversations
INSERT INTO "communication_conversations" ("id", "user_id", "agent_id", "title", "is_active", "metadata", "created_at", "updated_at") SELECT "id", "user_id", "agent_id", "title", "is_active", "metadata", "created_at", "updated_at" FROM "conversations";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'conversations', changes());
-- ~ continue the id counter of communication_conversations
DELETE FROM "sqlite_sequence" WHERE "name" = 'communication_conversations' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'conversations') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'communication_conversations', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'conversations'), 0), coalesce((SELECT max("id") FROM "communication_conversations"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'conversations') IS NOT NULL;
-- > move rows messages -> communication.messages (derived: updated_at = "created_at")
INSERT INTO "communication_messages" ("id", "conversation_id", "user_id", "agent_id", "sender_type", "content", "message_type", "tokens_used", "response_time_ms", "metadata", "created_at", "sentiment", "updated_at") SELECT "id", "conversation_id", "user_id", "agent_id", "sender_type", "content", "message_type", "tokens_used", "response_time_ms", "metadata", "created_at", "sentiment", "created_at" FROM "messages";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'messages', changes());
-- ~ continue the id counter of communication_messages
DELETE FROM "sqlite_sequence" WHERE "name" = 'communication_messages' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'messages') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'communication_messages', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'messages'), 0), coalesce((SELECT max("id") FROM "communication_messages"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'messages') IS NOT NULL;
-- > move rows chat_session_history -> communication.chat_session_history
INSERT INTO "communication_chat_session_history" ("id", "session_id", "conversation_id", "user_id", "event", "payload", "created_at") SELECT "id", "session_id", "conversation_id", "user_id", "event", "payload", "created_at" FROM "chat_session_history";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'chat_session_history', changes());
-- ~ continue the id counter of communication_chat_session_history
DELETE FROM "sqlite_sequence" WHERE "name" = 'communication_chat_session_history' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'chat_session_history') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'communication_chat_session_history', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'chat_session_history'), 0), coalesce((SELECT max("id") FROM "communication_chat_session_history"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'chat_session_history') IS NOT NULL;
-- > move rows boards -> workflow.boards
INSERT INTO "workflow_boards" ("id", "user_id", "name", "description", "board_type", "is_public", "config", "created_at", "updated_at") SELECT "id", "user_id", "name", "description", "board_type", "is_public", "config", "created_at", "updated_at" FROM "boards";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'boards', changes());
-- ~ continue the id counter of workflow_boards
DELETE FROM "sqlite_sequence" WHERE "name" = 'workflow_boards' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'boards') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'workflow_boards', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'boards'), 0), coalesce((SELECT max("id") FROM "workflow_boards"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'boards') IS NOT NULL;
-- > move rows board_nodes -> workflow.board_nodes
INSERT INTO "workflow_board_nodes" ("id", "board_id", "node_type", "label", "position_x", "position_y", "config", "created_at") SELECT "id", "board_id", "node_type", "label", "position_x", "position_y", "config", "created_at" FROM "board_nodes";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'board_nodes', changes());
-- ~ continue the id counter of workflow_board_nodes
DELETE FROM "sqlite_sequence" WHERE "name" = 'workflow_board_nodes' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_nodes') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'workflow_board_nodes', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_nodes'), 0), coalesce((SELECT max("id") FROM "workflow_board_nodes"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_nodes') IS NOT NULL;
-- > move rows board_connections -> workflow.board_connections
INSERT INTO "workflow_board_connections" ("id", "board_id", "source_node_id", "target_node_id", "condition", "created_at") SELECT "id", "board_id", "source_node_id", "target_node_id", "condition", "created_at" FROM "board_connections";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'board_connections', changes());
-- ~ continue the id counter of workflow_board_connections
DELETE FROM "sqlite_sequence" WHERE "name" = 'workflow_board_connections' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_connections') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'workflow_board_connections', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_connections'), 0), coalesce((SELECT max("id") FROM "workflow_board_connections"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_connections') IS NOT NULL;
-- > move rows board_executions -> workflow.board_executions
INSERT INTO "workflow_board_executions" ("id", "board_id", "user_id", "status", "input_data", "output_data", "error_message", "started_at", "finished_at") SELECT "id", "board_id", "user_id", "status", "input_data", "output_data", "error_message", "started_at", "finished_at" FROM "board_executions";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'board_executions', changes());
-- ~ continue the id counter of workflow_board_executions
DELETE FROM "sqlite_sequence" WHERE "name" = 'workflow_board_executions' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_executions') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'workflow_board_executions', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_executions'), 0), coalesce((SELECT max("id") FROM "workflow_board_executions"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_executions') IS NOT NULL;
-- > move rows board_templates -> workflow.board_templates
INSERT INTO "workflow_board_templates" ("id", "name", "description", "category", "template_data", "is_public", "created_by", "created_at") SELECT "id", "name", "description", "category", "template_data", "is_public", "created_by", "created_at" FROM "board_templates";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'board_templates', changes());
-- ~ continue the id counter of workflow_board_templates
DELETE FROM "sqlite_sequence" WHERE "name" = 'workflow_board_templates' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_templates') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'workflow_board_templates', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_templates'), 0), coalesce((SELECT max("id") FROM "workflow_board_templates"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'board_templates') IS NOT NULL;
-- > move rows workflows -> workflow.workflows
INSERT INTO "workflow_workflows" ("id", "board_id", "user_id", "name", "status", "definition", "created_at", "updated_at") SELECT "id", "board_id", "user_id", "name", "status", "definition", "created_at", "updated_at" FROM "workflows";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'workflows', changes());
-- ~ continue the id counter of workflow_workflows
DELETE FROM "sqlite_sequence" WHERE "name" = 'workflow_workflows' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'workflows') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'workflow_workflows', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'workflows'), 0), coalesce((SELECT max("id") FROM "workflow_workflows"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'workflows') IS NOT NULL;
-- > move rows tasks -> tasks.tasks (derived: completion_percentage = CASE WHEN "status" = 'completed' THEN 100 END)
INSERT INTO "tasks_tasks" ("id", "user_id", "assigned_to", "agent_id", "title", "description", "status", "priority", "category", "due_date", "completed_at", "created_at", "updated_at", "completion_percentage") SELECT "id", "user_id", "assigned_to", "agent_id", "title", "description", "status", "priority", "category", "due_date", "completed_at", "created_at", "updated_at", CASE WHEN "status" = 'completed' THEN 100 END FROM "tasks";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'tasks', changes());
-- ~ continue the id counter of tasks_tasks
DELETE FROM "sqlite_sequence" WHERE "name" = 'tasks_tasks' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'tasks') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'tasks_tasks', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'tasks'), 0), coalesce((SELECT max("id") FROM "tasks_tasks"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'tasks') IS NOT NULL;
-- > move rows system_info -> system.configurations
INSERT INTO "system_configurations" ("id", "key", "value", "category", "description", "is_public", "updated_at") SELECT "id", "key", "value", "category", "description", "is_public", "updated_at" FROM "system_info";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'system_info', changes());
-- ~ continue the id counter of system_configurations
DELETE FROM "sqlite_sequence" WHERE "name" = 'system_configurations' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'system_info') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'system_configurations', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'system_info'), 0), coalesce((SELECT max("id") FROM "system_configurations"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'system_info') IS NOT NULL;
-- > move rows marketplace_tools -> marketplace.tools
INSERT INTO "marketplace_tools__dpro_new" ("id", "name", "description", "category", "version", "author", "rating", "download_count", "is_active", "is_verified", "created_at") SELECT "id", "name", "description", "category", "version", "author", "rating", "download_count", "is_active", "is_verified", "created_at" FROM "marketplace_tools";
INSERT INTO temp.dpro_apply_counts VALUES ('moved', 'marketplace_tools', changes());
-- ~ continue the id counter of marketplace_tools
DELETE FROM "sqlite_sequence" WHERE "name" = 'marketplace_tools__dpro_new' AND (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'marketplace_tools') IS NOT NULL;
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT 'marketplace_tools__dpro_new', max(coalesce((SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'marketplace_tools'), 0), coalesce((SELECT max("id") FROM "marketplace_tools__dpro_new"), 0)) WHERE (SELECT "seq" FROM "sqlite_sequence" WHERE "name" = 'marketplace_tools') IS NOT NULL;
-- - drop legacy table users
DROP INDEX "idx_users_email";
DROP TABLE "users";
-- - drop legacy table user_settings
DROP TABLE "user_settings";
-- - drop legacy table user_profiles
DROP TABLE "user_profiles";
-- - drop legacy table user_sessions
DROP TABLE "user_sessions";
-- - drop legacy table activity_logs
DROP TABLE "activity_logs";
-- - drop legacy table agents
DROP TABLE "agents";
-- - drop legacy table conversations
DROP TABLE "conversations";
-- - drop legacy table messages
DROP INDEX "idx_messages_conversation";
DROP TABLE "messages";
-- - drop legacy table chat_session_history
DROP TABLE "chat_session_history";
-- - drop legacy table boards
DROP TABLE "boards";
-- - drop legacy table board_nodes
DROP TABLE "board_nodes";
-- - drop legacy table board_connections
DROP TABLE "board_connections";
-- - drop legacy table board_executions
DROP TABLE "board_executions";
-- - drop legacy table board_templates
DROP TABLE "board_templates";
-- - drop legacy table workflows
DROP TABLE "workflows";
-- - drop legacy table tasks
DROP TABLE "tasks";
-- - drop legacy table system_info
DROP TABLE "system_info";
-- - drop legacy table marketplace_tools
DROP TABLE "marketplace_tools";
-- ~ rename to marketplace_tools
PRAGMA legacy_alter_table = ON;
ALTER TABLE "marketplace_tools__dpro_new" RENAME TO "marketplace_tools";
PRAGMA legacy_alter_table = OFF;
-- ~ carry over view active_users
CREATE VIEW "active_users" AS SELECT "id", "username", "email" FROM "iam_users" AS "users" WHERE "is_active" = 1;
-- + index idx_iam_users_email_login
CREATE INDEX "idx_iam_users_email_login" ON "iam_users"("email", "is_active", "last_login" DESC);
-- + index idx_iam_users_subscription
CREATE INDEX "idx_iam_users_subscription" ON "iam_users"("subscription_type", "created_at" DESC);
-- + index idx_iam_users_created_at
CREATE INDEX "idx_iam_users_created_at" ON "iam_users"("created_at" DESC);
-- + index idx_iam_user_preferences_user
CREATE INDEX "idx_iam_user_preferences_user" ON "iam_user_preferences"("user_id");
-- + index idx_iam_user_profiles_user
CREATE INDEX "idx_iam_user_profiles_user" ON "iam_user_profiles"("user_id");
-- + index idx_iam_sessions_user_expires
CREATE INDEX "idx_iam_sessions_user_expires" ON "iam_user_sessions"("user_id", "expires_at" DESC);
-- + index idx_iam_sessions_cleanup
CREATE INDEX "idx_iam_sessions_cleanup" ON "iam_user_sessions"("expires_at", "is_active");
-- + index idx_iam_sessions_user_active
CREATE INDEX "idx_iam_sessions_user_active" ON "iam_user_sessions"("user_id", "expires_at" DESC) WHERE "is_active" = 1;
-- + index idx_iam_auth_logs_user_time
CREATE INDEX "idx_iam_auth_logs_user_time" ON "iam_authentication_logs"("user_id", "created_at" DESC);
-- + index idx_iam_auth_logs_action_time
CREATE INDEX "idx_iam_auth_logs_action_time" ON "iam_authentication_logs"("action", "created_at" DESC);
-- + index idx_iam_auth_logs_ip_time
CREATE INDEX "idx_iam_auth_logs_ip_time" ON "iam_authentication_logs"("ip_address", "created_at" DESC);
-- + index idx_agents_user_type_active
CREATE INDEX "idx_agents_user_type_active" ON "ai_agents_agents"("user_id", "agent_type", "is_active");
-- + index idx_agents_type_performance
CREATE INDEX "idx_agents_type_performance" ON "ai_agents_agents"("agent_type", "performance_score" DESC);
-- + index idx_agents_parent
CREATE INDEX "idx_agents_parent" ON "ai_agents_agents"("parent_agent_id");
-- + index idx_agents_provider_model
CREATE INDEX "idx_agents_provider_model" ON "ai_agents_agents"("model_provider", "model_name");
-- + index idx_agents_performance_ranking
CREATE INDEX "idx_agents_performance_ranking" ON "ai_agents_agents"("performance_score" DESC, "success_rate" DESC);
-- + index idx_agents_active_by_user
CREATE INDEX "idx_agents_active_by_user" ON "ai_agents_agents"("user_id", "performance_score" DESC) WHERE "is_active" = 1;
-- + index idx_agents_name
CREATE INDEX "idx_agents_name" ON "ai_agents_agents"("name");
-- + index idx_conv_user_updated
CREATE INDEX "idx_conv_user_updated" ON "communication_conversations"("user_id", "updated_at" DESC);
-- + index idx_conv_agent_rating
CREATE INDEX "idx_conv_agent_rating" ON "communication_conversations"("agent_id", "satisfaction_rating" DESC);
-- + index idx_conv_user_recent_active
CREATE INDEX "idx_conv_user_recent_active" ON "communication_conversations"("user_id", "updated_at" DESC) WHERE "is_active" = 1;
-- + index idx_conv_recent_active
CREATE INDEX "idx_conv_recent_active" ON "communication_conversations"("updated_at" DESC) WHERE "is_active" = 1;
-- + index idx_msg_conversation_time
CREATE INDEX "idx_msg_conversation_time" ON "communication_messages"("conversation_id", "created_at" DESC);
-- + index idx_msg_user_time
CREATE INDEX "idx_msg_user_time" ON "communication_messages"("user_id", "created_at" DESC);
-- + index idx_msg_agent_performance
CREATE INDEX "idx_msg_agent_performance" ON "communication_messages"("agent_id", "sender_type", "response_time_ms");
-- + index idx_msg_sender_type_time
CREATE INDEX "idx_msg_sender_type_time" ON "communication_messages"("sender_type", "created_at" DESC);
-- + index idx_chat_history_session_time
CREATE INDEX "idx_chat_history_session_time" ON "communication_chat_session_history"("session_id", "created_at");
-- + index idx_chat_history_conversation
CREATE INDEX "idx_chat_history_conversation" ON "communication_chat_session_history"("conversation_id");
-- + index idx_chat_history_user_time
CREATE INDEX "idx_chat_history_user_time" ON "communication_chat_session_history"("user_id", "created_at" DESC);
-- + index idx_boards_user_type
CREATE INDEX "idx_boards_user_type" ON "workflow_boards"("user_id", "board_type", "updated_at" DESC);
-- + index idx_boards_public
CREATE INDEX "idx_boards_public" ON "workflow_boards"("created_at" DESC) WHERE "is_public" = 1;
-- + index idx_board_nodes_board_type
CREATE INDEX "idx_board_nodes_board_type" ON "workflow_board_nodes"("board_id", "node_type");
-- + index idx_board_connections_board
CREATE INDEX "idx_board_connections_board" ON "workflow_board_connections"("board_id");
-- + index idx_board_connections_source
CREATE INDEX "idx_board_connections_source" ON "workflow_board_connections"("source_node_id");
-- + index idx_board_connections_target
CREATE INDEX "idx_board_connections_target" ON "workflow_board_connections"("target_node_id");
-- + index idx_board_executions_board_time
CREATE INDEX "idx_board_executions_board_time" ON "workflow_board_executions"("board_id", "started_at" DESC);
-- + index idx_board_executions_user_time
CREATE INDEX "idx_board_executions_user_time" ON "workflow_board_executions"("user_id", "started_at" DESC);
-- + index idx_board_executions_running
CREATE INDEX "idx_board_executions_running" ON "workflow_board_executions"("board_id", "started_at") WHERE "status" = 'running';
-- + index idx_board_templates_category
CREATE INDEX "idx_board_templates_category" ON "workflow_board_templates"("category", "created_at" DESC);
-- + index idx_board_templates_created_by
CREATE INDEX "idx_board_templates_created_by" ON "workflow_board_templates"("created_by");
-- + index idx_workflows_board_user
CREATE INDEX "idx_workflows_board_user" ON "workflow_workflows"("board_id", "user_id");
-- + index idx_workflows_status
CREATE INDEX "idx_workflows_status" ON "workflow_workflows"("status", "updated_at" DESC);
-- + index idx_workflows_user_updated
CREATE INDEX "idx_workflows_user_updated" ON "workflow_workflows"("user_id", "updated_at" DESC);
-- + index idx_tasks_user_status_priority
CREATE INDEX "idx_tasks_user_status_priority" ON "tasks_tasks"("user_id", "status", "priority" DESC, "due_date");
-- + index idx_tasks_assigned_status_due
CREATE INDEX "idx_tasks_assigned_status_due" ON "tasks_tasks"("assigned_to", "status", "due_date");
-- + index idx_tasks_agent_assistance
CREATE INDEX "idx_tasks_agent_assistance" ON "tasks_tasks"("agent_id", "status", "completion_percentage");
-- + index idx_tasks_status_created
CREATE INDEX "idx_tasks_status_created" ON "tasks_tasks"("status", "created_at" DESC);
-- + index idx_tasks_category_created
CREATE INDEX "idx_tasks_category_created" ON "tasks_tasks"("category", "created_at" DESC);
-- + index idx_tasks_pending_assigned
CREATE INDEX "idx_tasks_pending_assigned" ON "tasks_tasks"("assigned_to", "due_date") WHERE "status" = 'pending';
-- + index idx_tasks_open_due
CREATE INDEX "idx_tasks_open_due" ON "tasks_tasks"("due_date") WHERE "status" <> 'completed';
-- + index idx_system_config_category_public
CREATE INDEX "idx_system_config_category_public" ON "system_configurations"("category", "is_public");
-- + index idx_system_config_modified_by
CREATE INDEX "idx_system_config_modified_by" ON "system_configurations"("last_modified_by");
-- + index idx_audit_user_time
CREATE INDEX "idx_audit_user_time" ON "system_audit_logs"("user_id", "created_at" DESC);
-- + index idx_audit_action_resource
CREATE INDEX "idx_audit_action_resource" ON "system_audit_logs"("action", "resource_type", "created_at" DESC);
-- + index idx_audit_level_time
CREATE INDEX "idx_audit_level_time" ON "system_audit_logs"("log_level", "created_at" DESC);
-- + index idx_audit_time_level
CREATE INDEX "idx_audit_time_level" ON "system_audit_logs"("created_at" DESC, "log_level");
-- + index idx_audit_resource
CREATE INDEX "idx_audit_resource" ON "system_audit_logs"("resource_type", "resource_id", "created_at" DESC);
-- + index idx_marketplace_category_rating
CREATE INDEX "idx_marketplace_category_rating" ON "marketplace_tools"("category", "rating" DESC, "download_count" DESC);
-- + index idx_marketplace_active_verified
CREATE INDEX "idx_marketplace_active_verified" ON "marketplace_tools"("is_active", "is_verified");
-- + index idx_marketplace_search
CREATE INDEX "idx_marketplace_search" ON "marketplace_tools"("name", "category");
-- + trigger trg_iam_users_updated_at
CREATE TRIGGER trg_iam_users_updated_at
AFTER UPDATE ON iam_users
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE iam_users SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_iam_user_preferences_updated_at
CREATE TRIGGER trg_iam_user_preferences_updated_at
AFTER UPDATE ON iam_user_preferences
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE iam_user_preferences SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_iam_user_profiles_updated_at
CREATE TRIGGER trg_iam_user_profiles_updated_at
AFTER UPDATE ON iam_user_profiles
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE iam_user_profiles SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_ai_agents_agents_updated_at
CREATE TRIGGER trg_ai_agents_agents_updated_at
AFTER UPDATE ON ai_agents_agents
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE ai_agents_agents SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_communication_conversations_updated_at
CREATE TRIGGER trg_communication_conversations_updated_at
AFTER UPDATE ON communication_conversations
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE communication_conversations SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_communication_messages_updated_at
CREATE TRIGGER trg_communication_messages_updated_at
AFTER UPDATE ON communication_messages
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE communication_messages SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_workflow_boards_updated_at
CREATE TRIGGER trg_workflow_boards_updated_at
AFTER UPDATE ON workflow_boards
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE workflow_boards SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_workflow_workflows_updated_at
CREATE TRIGGER trg_workflow_workflows_updated_at
AFTER UPDATE ON workflow_workflows
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE workflow_workflows SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_tasks_tasks_updated_at
CREATE TRIGGER trg_tasks_tasks_updated_at
AFTER UPDATE ON tasks_tasks
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE tasks_tasks SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_system_configurations_updated_at
CREATE TRIGGER trg_system_configurations_updated_at
AFTER UPDATE ON system_configurations
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE system_configurations SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
-- + trigger trg_iam_users_audit
-- Audit of user changes. UPDATE OF lists every column but id and updated_at, so the
-- updated_at trigger's own UPDATE does not log a second row; WHEN skips updates that
-- change nothing. password_hash is never copied into the log, only whether it changed.
-- 'new'.updated_at shows the value the updated_at trigger is about to set (as on PostgreSQL,
-- where the BEFORE trigger has already set it). Values are stored as SQLite holds them
-- (booleans 0/1); preferences is embedded as JSON when it is valid JSON, else as text.
CREATE TRIGGER trg_iam_users_audit
AFTER UPDATE OF username, email, password_hash, full_name, is_active, is_admin, subscription_type, preferences, last_login, created_at ON iam_users
FOR EACH ROW
WHEN OLD.username IS NOT NEW.username
   OR OLD.email IS NOT NEW.email
   OR OLD.password_hash IS NOT NEW.password_hash
   OR OLD.full_name IS NOT NEW.full_name
   OR OLD.is_active IS NOT NEW.is_active
   OR OLD.is_admin IS NOT NEW.is_admin
   OR OLD.subscription_type IS NOT NEW.subscription_type
   OR OLD.preferences IS NOT NEW.preferences
   OR OLD.last_login IS NOT NEW.last_login
   OR OLD.created_at IS NOT NEW.created_at
BEGIN
    INSERT INTO system_audit_logs (user_id, action, resource_type, resource_id, details, created_at)
    VALUES (
        NEW.id, 'user_updated', 'user', NEW.id,
        json_object(
            'old', json_object(
                    'id', OLD.id,
                    'username', OLD.username,
                    'email', OLD.email,
                    'full_name', OLD.full_name,
                    'is_active', OLD.is_active,
                    'is_admin', OLD.is_admin,
                    'subscription_type', OLD.subscription_type,
                    'preferences', CASE WHEN json_valid(OLD.preferences) THEN json(OLD.preferences) ELSE OLD.preferences END,
                    'last_login', OLD.last_login,
                    'created_at', OLD.created_at,
                    'updated_at', OLD.updated_at
                ),
            'new', json_object(
                    'id', NEW.id,
                    'username', NEW.username,
                    'email', NEW.email,
                    'full_name', NEW.full_name,
                    'is_active', NEW.is_active,
                    'is_admin', NEW.is_admin,
                    'subscription_type', NEW.subscription_type,
                    'preferences', CASE WHEN json_valid(NEW.preferences) THEN json(NEW.preferences) ELSE NEW.preferences END,
                    'last_login', NEW.last_login,
                    'created_at', NEW.created_at,
                    'updated_at', CASE WHEN NEW.updated_at IS OLD.updated_at THEN CURRENT_TIMESTAMP ELSE NEW.updated_at END
                ),
            'password_changed', json(CASE WHEN OLD.password_hash IS NOT NEW.password_hash THEN 'true' ELSE 'false' END)
        ),
        CURRENT_TIMESTAMP
    );
END;
-- + trigger trg_communication_messages_agent_activity
-- An agent's message marks the agent as active (its updated_at moves). No counters are
-- kept on agents (see ddl/ai_agents.sql), so there is nothing to increment.
CREATE TRIGGER trg_communication_messages_agent_activity
AFTER INSERT ON communication_messages
FOR EACH ROW
WHEN NEW.sender_type = 'agent' AND NEW.agent_id IS NOT NULL
BEGIN
    UPDATE ai_agents_agents SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.agent_id;
END;
-- ~ one id space for activity_logs: iam.authentication_logs, system.audit_logs
INSERT INTO "sqlite_sequence" ("name", "seq") SELECT "name", 0 FROM (SELECT 'iam_authentication_logs' AS "name" UNION ALL SELECT 'system_audit_logs' AS "name") WHERE "name" NOT IN (SELECT "name" FROM "sqlite_sequence");
UPDATE "sqlite_sequence" SET "seq" = (SELECT max("seq") FROM (SELECT "seq" FROM "sqlite_sequence" WHERE "name" IN ('iam_authentication_logs', 'system_audit_logs') UNION ALL SELECT max("id") FROM "iam_authentication_logs" UNION ALL SELECT max("id") FROM "system_audit_logs")) WHERE "name" IN ('iam_authentication_logs', 'system_audit_logs');
CREATE TRIGGER "trg_iam_authentication_logs_shared_ids" AFTER INSERT ON "iam_authentication_logs" FOR EACH ROW
BEGIN
    UPDATE "sqlite_sequence" SET "seq" = NEW."id" WHERE "name" IN ('system_audit_logs') AND "seq" < NEW."id";
END;
CREATE TRIGGER "trg_system_audit_logs_shared_ids" AFTER INSERT ON "system_audit_logs" FOR EACH ROW
BEGIN
    UPDATE "sqlite_sequence" SET "seq" = NEW."id" WHERE "name" IN ('iam_authentication_logs') AND "seq" < NEW."id";
END;
-- + search index communication_messages_fts on communication.messages.content
CREATE VIRTUAL TABLE "communication_messages_fts" USING fts5("content", content='communication_messages', content_rowid='id', tokenize='trigram');
INSERT INTO "communication_messages_fts" ("communication_messages_fts") VALUES ('rebuild');
CREATE TRIGGER "trg_communication_messages_fts_insert" AFTER INSERT ON "communication_messages" FOR EACH ROW
BEGIN
    INSERT INTO "communication_messages_fts" ("rowid", "content") VALUES (NEW."id", NEW."content");
END;
CREATE TRIGGER "trg_communication_messages_fts_delete" AFTER DELETE ON "communication_messages" FOR EACH ROW
BEGIN
    INSERT INTO "communication_messages_fts" ("communication_messages_fts", "rowid", "content") VALUES ('delete', OLD."id", OLD."content");
END;
CREATE TRIGGER "trg_communication_messages_fts_update" AFTER UPDATE OF "id", "content" ON "communication_messages" FOR EACH ROW
BEGIN
    INSERT INTO "communication_messages_fts" ("communication_messages_fts", "rowid", "content") VALUES ('delete', OLD."id", OLD."content");
    INSERT INTO "communication_messages_fts" ("rowid", "content") VALUES (NEW."id", NEW."content");
END;
-- ~ statistics (ANALYZE) for 19 tables
ANALYZE "iam_users";
ANALYZE "iam_user_preferences";
ANALYZE "iam_user_profiles";
ANALYZE "iam_user_sessions";
ANALYZE "iam_authentication_logs";
ANALYZE "ai_agents_agents";
ANALYZE "communication_conversations";
ANALYZE "communication_messages";
ANALYZE "communication_chat_session_history";
ANALYZE "workflow_boards";
ANALYZE "workflow_board_nodes";
ANALYZE "workflow_board_connections";
ANALYZE "workflow_board_executions";
ANALYZE "workflow_board_templates";
ANALYZE "workflow_workflows";
ANALYZE "tasks_tasks";
ANALYZE "system_configurations";
ANALYZE "system_audit_logs";
ANALYZE "marketplace_tools";
-- every legacy row went somewhere: the parts of a split and the quarantine add up
INSERT INTO temp.dpro_apply_checks SELECT 'rows of ' || s.legacy || ' add up', s.rows = coalesce((SELECT sum(m.rows) FROM temp.dpro_apply_counts AS m WHERE m.legacy = s.legacy AND m.kind <> 'source'), 0) FROM temp.dpro_apply_counts AS s WHERE s.kind = 'source';
INSERT INTO temp.dpro_apply_checks SELECT 'foreign keys hold', NOT EXISTS (SELECT 1 FROM pragma_foreign_key_check);
CREATE TABLE IF NOT EXISTS "system_migration_ledger" ("id" INTEGER PRIMARY KEY, "action" TEXT NOT NULL, "at" TEXT NOT NULL, "tool_version" TEXT, "source" TEXT, "source_fingerprint" TEXT, "backup" TEXT, "state" TEXT, "plan" TEXT);
-- the ledger: what was done, with the plan (rollback's instructions)
INSERT INTO "system_migration_ledger" ("action", "at", "tool_version", "source", "source_fingerprint", "backup", "state", "plan") VALUES ('apply', '<TIME>', '0.1.0', '<DIR>/dpro_agent.db', 'sha256:f80a2cdae71502cc1247f9e8c6e77fcb4ce62f7ac560cacdf6e4716401a98d39', '<DIR>/dpro_agent.db.before-dpro-migrate.bak', json_object('sequences', json_object('users', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'users'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('iam_users'))), 'user_settings', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'user_settings'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('iam_user_preferences'))), 'user_profiles', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'user_profiles'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('iam_user_profiles'))), 'user_sessions', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'user_sessions'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('iam_user_sessions'))), 'activity_logs', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'activity_logs'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('iam_authentication_logs', 'system_audit_logs'))), 'agents', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'agents'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('ai_agents_agents'))), 'conversations', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'conversations'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('communication_conversations'))), 'messages', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'messages'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('communication_messages'))), 'chat_session_history', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'chat_session_history'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('communication_chat_session_history'))), 'boards', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'boards'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('workflow_boards'))), 'board_nodes', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'board_nodes'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('workflow_board_nodes'))), 'board_connections', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'board_connections'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('workflow_board_connections'))), 'board_executions', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'board_executions'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('workflow_board_executions'))), 'board_templates', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'board_templates'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('workflow_board_templates'))), 'workflows', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'workflows'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('workflow_workflows'))), 'tasks', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'tasks'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('tasks_tasks'))), 'system_info', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'system_info'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('system_configurations'))), 'marketplace_tools', json_object('legacy', (SELECT seq FROM temp.dpro_legacy_sequences WHERE name = 'marketplace_tools'), 'cutover', (SELECT max(seq) FROM sqlite_sequence WHERE name IN ('marketplace_tools'))))), '<PLAN JSON>');
COMMIT;
