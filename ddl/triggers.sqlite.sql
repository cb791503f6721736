-- Triggers of the target schema, SQLite dialect (tables are named <domain>_<table>).
-- Same trigger names as ddl/triggers.postgresql.sql. Each statement follows a line
-- `-- statement`; each is complete by sqlite3.complete_statement.
--
-- updated_at: AFTER UPDATE, only WHEN the statement left updated_at alone (an explicit
-- value wins); the trigger's own UPDATE then changes updated_at, so with the default
-- recursive_triggers = OFF it does not re-fire itself.

-- statement
CREATE TRIGGER trg_iam_users_updated_at
AFTER UPDATE ON iam_users
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE iam_users SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_iam_user_preferences_updated_at
AFTER UPDATE ON iam_user_preferences
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE iam_user_preferences SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_iam_user_profiles_updated_at
AFTER UPDATE ON iam_user_profiles
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE iam_user_profiles SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_ai_agents_agents_updated_at
AFTER UPDATE ON ai_agents_agents
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE ai_agents_agents SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_communication_conversations_updated_at
AFTER UPDATE ON communication_conversations
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE communication_conversations SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_communication_messages_updated_at
AFTER UPDATE ON communication_messages
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE communication_messages SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_workflow_boards_updated_at
AFTER UPDATE ON workflow_boards
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE workflow_boards SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_workflow_workflows_updated_at
AFTER UPDATE ON workflow_workflows
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE workflow_workflows SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_tasks_tasks_updated_at
AFTER UPDATE ON tasks_tasks
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE tasks_tasks SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
CREATE TRIGGER trg_system_configurations_updated_at
AFTER UPDATE ON system_configurations
FOR EACH ROW
WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE system_configurations SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;

-- statement
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

-- statement
-- An agent's message marks the agent as active (its updated_at moves). No counters are
-- kept on agents (see ddl/ai_agents.sql), so there is nothing to increment.
CREATE TRIGGER trg_communication_messages_agent_activity
AFTER INSERT ON communication_messages
FOR EACH ROW
WHEN NEW.sender_type = 'agent' AND NEW.agent_id IS NOT NULL
BEGIN
    UPDATE ai_agents_agents SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.agent_id;
END;
