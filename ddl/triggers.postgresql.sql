-- Triggers of the target schema, PostgreSQL dialect.
-- Same trigger names as ddl/triggers.sqlite.sql. Each statement follows a line
-- `-- statement`; functions are LANGUAGE plpgsql with dollar-quoted bodies and live in
-- the system schema. Functions come first, then the triggers that call them.

-- statement
-- Shared by every table with an updated_at column. BEFORE UPDATE, so the new value is
-- written with the row (no second UPDATE); an explicit value in the statement wins.
CREATE OR REPLACE FUNCTION system.set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := CURRENT_TIMESTAMP;
    END IF;
    RETURN NEW;
END;
$$;

-- statement
-- Audit of user changes: old and new row as JSON without password_hash (never copy a
-- secret into a log), plus whether the password changed. A change that touches only
-- updated_at is not logged.
CREATE OR REPLACE FUNCTION system.audit_user_change()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF (to_jsonb(OLD) - 'updated_at') = (to_jsonb(NEW) - 'updated_at') THEN
        RETURN NULL;
    END IF;
    INSERT INTO system.audit_logs (user_id, action, resource_type, resource_id, details, created_at)
    VALUES (
        NEW.id, 'user_updated', 'user', NEW.id,
        jsonb_build_object(
            'old', to_jsonb(OLD) - 'password_hash',
            'new', to_jsonb(NEW) - 'password_hash',
            'password_changed', OLD.password_hash IS DISTINCT FROM NEW.password_hash
        ),
        CURRENT_TIMESTAMP
    );
    RETURN NULL;
END;
$$;

-- statement
-- An agent's message marks the agent as active. No counters are kept on agents (see
-- ddl/ai_agents.sql), so there is nothing to increment.
CREATE OR REPLACE FUNCTION system.touch_agent_activity()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE ai_agents.agents SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.agent_id;
    RETURN NULL;
END;
$$;

-- statement
CREATE TRIGGER trg_iam_users_updated_at
BEFORE UPDATE ON iam.users
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_iam_user_preferences_updated_at
BEFORE UPDATE ON iam.user_preferences
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_iam_user_profiles_updated_at
BEFORE UPDATE ON iam.user_profiles
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_ai_agents_agents_updated_at
BEFORE UPDATE ON ai_agents.agents
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_communication_conversations_updated_at
BEFORE UPDATE ON communication.conversations
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_communication_messages_updated_at
BEFORE UPDATE ON communication.messages
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_workflow_boards_updated_at
BEFORE UPDATE ON workflow.boards
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_workflow_workflows_updated_at
BEFORE UPDATE ON workflow.workflows
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_tasks_tasks_updated_at
BEFORE UPDATE ON tasks.tasks
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_system_configurations_updated_at
BEFORE UPDATE ON system.configurations
FOR EACH ROW
EXECUTE FUNCTION system.set_updated_at();

-- statement
CREATE TRIGGER trg_iam_users_audit
AFTER UPDATE ON iam.users
FOR EACH ROW
WHEN (OLD.* IS DISTINCT FROM NEW.*)
EXECUTE FUNCTION system.audit_user_change();

-- statement
CREATE TRIGGER trg_communication_messages_agent_activity
AFTER INSERT ON communication.messages
FOR EACH ROW
WHEN (NEW.sender_type = 'agent' AND NEW.agent_id IS NOT NULL)
EXECUTE FUNCTION system.touch_agent_activity();
