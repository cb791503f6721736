"""Generate an example legacy DPRO database (``dpro_agent.db``) of any size.

The tables are created from ``data/legacy_schema.sql`` verbatim, so the file looks exactly like what
the legacy application made; the rows are clean (every rule of the target schema holds) and realistic
(names with accents, CJK text and emoji, JSON documents, timestamps over 2023-2025).

How the rows are made: SQLite makes them itself. Every table is filled by
``WITH RECURSIVE c(n, ...) ... INSERT INTO t SELECT ... FROM c`` over a counter, in batches, so nothing
big is ever built in Python and memory stays flat. The "random" values are not SQLite's ``random()``
(which cannot be seeded) but an integer hash of the row number and of constants drawn from
``random.Random(seed)``: ``h(n) = (((n*a + b) mod p)^2 + c) mod p)^2 + d) mod p`` with ``p = 2^31 - 1``
(all intermediate values stay below 2^63, so SQLite never switches to floating point). The output is
therefore fully deterministic for a given seed, at every size: two files made with the same arguments
have identical content. Foreign-key-like columns are computed from the same hashes (the owner of
conversation k is ``h_user(k) mod users + 1`` wherever it is needed), so every reference hits a row.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["SHAPES", "generate_legacy_db", "row_plan"]

SCHEMA_FILE = Path(__file__).parent / "data" / "legacy_schema.sql"

_ALL_TABLES = (
    "users", "user_settings", "user_profiles", "user_sessions", "activity_logs", "agents",
    "conversations", "messages", "chat_session_history", "tasks", "boards", "board_nodes",
    "board_connections", "board_executions", "board_templates", "workflows", "system_info",
    "marketplace_tools",
)

SHAPES: dict[str, tuple[str, ...]] = {
    # Newest releases: every table of legacy_schema.sql.
    "18": _ALL_TABLES,
    # Older releases.
    "13": ("users", "user_settings", "user_profiles", "user_sessions", "activity_logs", "agents",
           "conversations", "messages", "tasks", "boards", "workflows", "system_info", "marketplace_tools"),
    "14": ("users", "user_profiles", "user_sessions", "activity_logs", "agents", "conversations",
           "messages", "chat_session_history", "tasks", "boards", "board_nodes", "board_connections",
           "board_executions", "board_templates"),
}

BATCH = 100_000

# Time range: 2023-01-01 00:00:00 .. 2025-12-31 23:59:59 UTC.
T0 = 1672531200
T_END = 1767225599
SPAN = T_END - T0
DAY = 86400

_P = 2147483647  # 2^31 - 1, prime


def row_plan(messages: int) -> dict[str, int]:
    """Rows per table for a given number of messages (every table, whatever the shape).

    At messages=1,000,000 the other tables hold about 461,500 rows together."""
    m = messages
    users = max(5, m // 200)
    boards = max(2, m // 1000)
    return {
        "users": users,
        "user_settings": users,
        "user_profiles": users,
        "user_sessions": max(5, m // 50),           # 2 %
        "activity_logs": max(10, m // 5),            # 20 %
        "agents": 2 * users,
        "conversations": max(3, m // 20),            # 5 %, about 20 messages each
        "messages": m,
        "chat_session_history": max(5, m * 12 // 100),  # 12 %
        "tasks": max(5, m * 3 // 100),               # 3 %
        "boards": boards,
        "board_nodes": 6 * boards,
        "board_connections": 5 * boards,
        "board_executions": 4 * boards,
        "board_templates": 8 + m // 100_000,
        "workflows": max(2, m // 2000),
        "system_info": len(_SYSTEM_INFO),
        "marketplace_tools": len(_TOOLS),
    }


# --------------------------------------------------------------------------------------------------
# Vocabulary. Lists are looked up from SQL through a temporary table (temp._lex).

_FIRST = [
    ("Amélie", "amelie"), ("Zoë", "zoe"), ("José", "jose"), ("Björn", "bjorn"), ("Chloé", "chloe"),
    ("Søren", "soren"), ("François", "francois"), ("Łukasz", "lukasz"), ("Hiroshi", "hiroshi"),
    ("Mei", "mei"), ("Ji-woo", "jiwoo"), ("Aarav", "aarav"), ("Fatima", "fatima"), ("Olivia", "olivia"),
    ("Liam", "liam"), ("Noah", "noah"), ("Emma", "emma"), ("Mateo", "mateo"), ("Ingrid", "ingrid"),
    ("Dmitri", "dmitri"), ("Ana", "ana"), ("Kwame", "kwame"), ("Priya", "priya"), ("Yuki", "yuki"),
    ("Renée", "renee"), ("Thiago", "thiago"), ("Siobhán", "siobhan"), ("Jürgen", "jurgen"),
    ("Nikolaj", "nikolaj"), ("Leïla", "leila"), ("Ömer", "omer"), ("Sofía", "sofia"),
    ("Wei", "wei"), ("Haruto", "haruto"), ("Minh", "minh"), ("Grace", "grace"),
]
_LAST = [
    ("Dubois", "dubois"), ("Müller", "muller"), ("Núñez", "nunez"), ("O'Brien", "obrien"),
    ("Tanaka", "tanaka"), ("Wang", "wang"), ("Kim", "kim"), ("Sharma", "sharma"), ("Smith", "smith"),
    ("García", "garcia"), ("Kowalski", "kowalski"), ("Andersen", "andersen"), ("Rossi", "rossi"),
    ("Nguyễn", "nguyen"), ("Okafor", "okafor"), ("Petrov", "petrov"), ("Johansson", "johansson"),
    ("Silva", "silva"), ("Yılmaz", "yilmaz"), ("Chen", "chen"), ("Lefèvre", "lefevre"),
    ("Schröder", "schroder"), ("Haddad", "haddad"), ("Brown", "brown"), ("Ivanova", "ivanova"),
    ("Costa", "costa"), ("Sato", "sato"), ("Park", "park"), ("Fernández", "fernandez"), ("Novak", "novak"),
]
_CJK_NAMES = ["田中 太郎", "王 芳", "김 민준", "佐藤 花子", "李 娜", "박 서연", "山田 健", "陈 伟"]

_NICKNAMES = ["Ami", "Zozo", "小明", "Björnie", "Chocho", "Doc", "Nana", "Kiki", "ゆっき", "Pépé", "JJ", "Mimi 🌸"]

_BIOS = [
    "Data scientist who loves clean pipelines.",
    "Ingénieure logicielle, passionnée de café ☕ et d'IA.",
    "Product manager. Berlin → Lisboa.",
    "機械学習エンジニアです。よろしくお願いします。",
    "Estudiante de doctorado en lingüística computacional.",
    "Full-stack dev 🚀 | open source | rust & python",
    "Teacher exploring AI tutors for my classroom.",
    "연구원 — 자연어 처리와 추천 시스템.",
    "Freelance writer; I use agents for research and drafts.",
    "Operations lead. Automating the boring stuff ⚙️",
    "热爱开源和人工智能的学生。",
    "Consultant, Zürich. Spreadsheets are my natural habitat.",
]

_USER_MSGS = [
    "Can you summarize the attached report in three bullet points?",
    "What's the difference between a list and a tuple in Python?",
    "Peux-tu m'aider à rédiger un e-mail de relance pour un client ?",
    "¿Cuál es la mejor forma de aprender SQL rápidamente?",
    "Schreib mir bitte eine kurze Zusammenfassung des Meetings.",
    "この文章を英語に翻訳してください。",
    "帮我写一个快速排序的函数。",
    "이 코드에서 버그를 찾아줄 수 있어?",
    "Give me 5 ideas for a team offsite 🎉",
    "Explain transformers like I'm five.",
    "How do I reset my password?",
    "Draft a LinkedIn post about our product launch 🚀",
    "Why does my query return duplicate rows?",
    "Plan a 3-day trip to Kyoto (京都) on a budget.",
    "What are the pros and cons of microservices?",
    "Translate 'see you tomorrow' into Portuguese and Italian.",
    "Can you review this regex: ^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$ ?",
    "Qu'est-ce qu'une fonction récursive ?",
    "Write a haiku about databases.",
    "Make this paragraph sound more professional.",
    "Help me prepare for a job interview as a data analyst.",
    "What's a good name for a coffee shop? ☕",
    "Convert 72°F to Celsius.",
    "List the key points of GDPR for a small startup.",
    "I need a weekly workout plan 💪",
    "Summarize chapter 4 of 'Thinking, Fast and Slow'.",
    "How can I speed up my pandas groupby?",
    "Erkläre mir den Unterschied zwischen TCP und UDP.",
    "Generate test data for a users table with 10 rows.",
    "Thanks, that was really helpful! 🙏",
    "Can you make it shorter?",
    "Rédige un plan pour un exposé sur l'énergie solaire.",
    "What should I cook tonight with rice, eggs and spinach?",
    "Is it safe to store JSON in SQLite?",
    "Escribe un poema corto sobre el mar 🌊",
    "Show me an example of a recursive CTE.",
]
_AGENT_INTROS = [
    "Sure!", "Of course.", "Great question!", "Here's what I found:", "Bien sûr !", "¡Claro!",
    "Gerne!", "かしこまりました。", "好的。", "알겠습니다.", "Happy to help 😊", "Let's break it down:",
    "Absolutely.", "Good idea —", "Here you go:", "In short:",
]
_AGENT_BODIES = [
    "The main points are cost, speed and maintainability; each involves trade-offs.",
    "You can use a recursive common table expression to walk the hierarchy level by level.",
    "Voici une proposition de structure en trois parties : contexte, analyse, recommandations.",
    "Aquí tienes un resumen con los puntos clave y los próximos pasos.",
    "Hier ist ein Entwurf, den du an deinen Stil anpassen kannst.",
    "以下が翻訳です。ニュアンスを保つように意訳しています。",
    "下面是一个示例实现，时间复杂度为 O(n log n)。",
    "문제는 루프의 종료 조건에 있습니다. 인덱스를 확인해 보세요.",
    "1) Start small 2) Measure 3) Iterate — repeat until it works ✅",
    "```python\ndef quicksort(xs):\n    return xs if len(xs) < 2 else ...\n```",
    "Consider adding an index on the foreign-key column; it should remove the full scan.",
    "The temperature is about 22.2 °C.",
    "A tuple is immutable and hashable; a list is mutable. Use tuples for fixed records.",
    "I'd suggest a DISTINCT or a GROUP BY, but first check the join condition.",
    "Here is a shorter version that keeps the tone friendly but professional.",
    "Day 1: Fushimi Inari ⛩️, Day 2: Arashiyama 🎋, Day 3: Gion and Nishiki market.",
    "GDPR requires a lawful basis, data minimisation, and a way to honour deletion requests.",
    "Try vectorized operations or categorical dtypes; avoid apply() in hot paths.",
    "Stored as TEXT, JSON works well in SQLite, and json_extract() lets you query it.",
    "Feel free to ask for more detail on any step.",
    "Je peux aussi adapter le ton si besoin.",
    "Let me know if you'd like a table or a chart instead 📊",
    "Key risks: scope creep, unclear ownership, and missing tests.",
    "TCP is connection-oriented and reliable; UDP is connectionless and faster.",
    "Ingredients: rice, eggs, spinach, soy sauce — a quick fried rice works great 🍳",
    "Une fonction récursive s'appelle elle-même jusqu'à atteindre un cas de base.",
    "Monday: legs, Tuesday: push, Wednesday: rest, Thursday: pull, Friday: cardio.",
    "That looks correct, though the TLD part could allow longer domains.",
]
_SYSTEM_MSGS = [
    "Conversation started.", "Agent switched to a different model.", "Context window trimmed to fit the limit.",
    "User uploaded a file.", "Session resumed after reconnect.", "Rate limit reached; retrying in 5 s.",
]
_CONV_TITLES = [
    "Quarterly report summary", "Python basics", "Relance client", "Aprender SQL", "Meeting-Zusammenfassung",
    "翻訳のお願い", "快速排序", "버그 찾기", "Team offsite ideas 🎉", "Transformers explained",
    "Trip to Kyoto 京都", "Microservices trade-offs", "Interview prep", "GDPR checklist",
    "Workout plan 💪", "Pandas performance", "Recette du soir", "Poema del mar 🌊", "Regex review",
    "Product launch post", "Untitled conversation", "Brainstorm", "Onboarding questions", "Research notes",
]
_AGENT_NAMES = [
    "Research Assistant", "Code Reviewer", "Traducteur français", "日本語アシスタント", "Data Analyst 📊",
    "Writing Coach", "Support Bot", "Asistente de ventas", "Lern-Tutor", "SQL Helper", "Meeting Scribe",
    "Travel Planner ✈️", "数据助手", "Marketing Copywriter", "DevOps Buddy", "연구 도우미",
]
_AGENT_DESCS = [
    "Finds sources and summarizes them.", "Reviews pull requests and suggests fixes.",
    "Traduit et reformule des textes.", "日本語の文章を手伝います。", "Explores datasets and builds charts.",
    "Improves clarity and tone.", "Answers customer questions 24/7.", "Ayuda con propuestas comerciales.",
    "Erklärt Konzepte Schritt für Schritt.", "Writes and optimizes SQL queries.",
]
_PROMPTS = [
    "You are a helpful assistant. Be concise.",
    "You are an expert software engineer. Explain your reasoning.",
    "Tu es un assistant qui répond en français, de façon claire et polie.",
    "You are a data analyst. Prefer tables and numbers.",
    "あなたは丁寧な日本語のアシスタントです。",
    "You are a friendly tutor; ask a question back when the user is unsure.",
]
_PROVIDERS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-sonnet"),
              ("anthropic", "claude-3-haiku"), ("google", "gemini-1.5-pro"), ("mistral", "mistral-large"),
              ("ollama", "llama3:8b"), ("openai", "gpt-3.5-turbo")]
_TASK_TITLES = [
    "Prepare quarterly presentation", "Préparer la réunion d'équipe", "Review pull request", "Fix login bug",
    "Write blog post draft", "Actualizar la documentación", "Daten bereinigen", "顧客リストを整理する",
    "整理会议纪要", "보고서 작성", "Plan sprint 42", "Call the accountant 📞", "Migrate database",
    "Book flights to Lisbon ✈️", "Update onboarding guide", "Train new agent", "Clean up old boards",
    "Answer support tickets", "Renew SSL certificate", "Team lunch 🍕",
]
_TASK_DESCS = [
    "See the notes from Monday's meeting.", "High impact, low effort.", "Blocked until the API is ready.",
    "Voir le document partagé.", "Coordinate with the design team.", "詳細はチャットを参照。",
    "Needs a second review.", "Deadline set by the client.",
]
_BOARD_NAMES = [
    "Onboarding flow", "Pipeline de données", "カスタマーサポート", "Lead qualification", "Content calendar",
    "Research pipeline", "Bug triage", "Flujo de ventas", "Daily digest", "内容审核", "Release checklist",
    "Meeting notes → tasks",
]
_NODE_LABELS = [
    "Start", "Classify request", "Search the web", "Score > 0.5?", "Draft answer", "Send to Slack",
    "Résumé", "翻訳", "Wait for approval", "Store result", "Notify user 🔔", "Extract entities",
]
_TEMPLATE_NAMES = [
    "Customer support triage", "Research assistant", "Blog writer", "Meeting summarizer",
    "Traduction automatique", "Lead scoring", "Daily news digest", "コードレビュー",
    "Invoice extraction", "Social media scheduler",
]
_FEEDBACK = [
    "Great app, but the dark mode is too dark.", "Les réponses sont parfois trop longues.",
    "Please add an export to CSV!", "とても便利です！", "The agent forgot my context again 😕",
    "Me encanta la nueva interfaz.", "Login is slow on mobile.", "非常好用，谢谢！",
]
_USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
    "DPRO-Desktop/2.4.1 (Electron 28)",
    "python-requests/2.31.0",
]
_ERRORS = ["Timeout after 120 s", 'Tool "Web Search" returned HTTP 503', "Rate limit exceeded",
           "Invalid JSON from model"]
_TIMEZONES = ["UTC", "Europe/Paris", "Europe/Berlin", "America/New_York", "America/Los_Angeles",
              "Asia/Tokyo", "Asia/Shanghai", "Asia/Seoul", "America/Sao_Paulo", "Asia/Kolkata"]
_LANGS = ["en", "fr", "es", "de", "ja", "zh", "ko", "pt"]

_SYSTEM_INFO = [
    # key, value, category, description, is_public
    ("app.name", "DPRO AI Agent", "general", "Application name shown in the UI", 1),
    ("app.version", "2.4.1", "general", "Installed application version", 1),
    ("db.schema_version", "18", "database", "Legacy schema revision", 0),
    ("ai.default_model", "gpt-4o", "ai", "Model used when an agent has none", 0),
    ("ai.default_temperature", "0.7", "ai", "Default sampling temperature", 0),
    ("ai.max_tokens", "4000", "ai", "Default completion limit", 0),
    ("auth.session_ttl_hours", "720", "security", "Lifetime of a login session", 0),
    ("auth.password_min_length", "8", "security", "Minimum password length", 1),
    ("ui.default_theme", "light", "ui", "Theme for new users", 1),
    ("ui.default_language", "en", "ui", "Language for new users", 1),
    ("features.marketplace_enabled", "true", "features", "Show the tool marketplace", 1),
    ("maintenance.mode", "false", "operations", "Reject logins while true", 0),
]
_TOOLS = [
    # name, description, category, author
    ("Web Search", "Search the web and return the top results.", "research", "DPRO Team"),
    ("PDF Reader", "Extract text and tables from PDF files.", "documents", "DPRO Team"),
    ("Traducteur DeepL", "Traduction de haute qualité via DeepL.", "language", "Camille Lefèvre"),
    ("画像生成", "テキストから画像を生成します。", "media", "Sato Labs"),
    ("Slack Notifier 🔔", "Post messages to a Slack channel.", "communication", "Acme Integrations"),
    ("Google Calendar", "Read and create calendar events.", "productivity", "DPRO Team"),
    ("SQL Runner", "Run read-only SQL against a connected database.", "data", "Jürgen Schröder"),
    ("CSV Analyzer", "Summarize and chart CSV files.", "data", "DataWorks"),
    ("GitHub PR Bot", "Review and comment on pull requests.", "developer", "OpenTools"),
    ("Email Sender", "Send templated e-mails.", "communication", "Acme Integrations"),
    ("Weather", "Current weather and forecasts.", "utilities", "Nguyễn Minh"),
    ("Calculadora financiera", "Préstamos, intereses y amortización.", "finance", "Sofía Núñez"),
    ("Jira Connector", "Create and update Jira issues.", "productivity", "OpenTools"),
    ("语音转文字", "将音频转换为文本。", "media", "陈伟"),
    ("Notion Sync", "Sync pages and databases with Notion.", "productivity", "DataWorks"),
    ("Code Sandbox", "Execute Python snippets in isolation.", "developer", "DPRO Team"),
    ("RSS Digest", "Daily digest of RSS feeds.", "research", "Grace Brown"),
    ("OCR", "Read text from images.", "documents", "Sato Labs"),
    ("Stock Quotes 📈", "Delayed stock prices.", "finance", "Ömer Yılmaz"),
    ("Wikipedia", "Look up encyclopedia articles.", "research", "OpenTools"),
]

_LISTS: dict[str, list[str]] = {
    "first": [d for d, _ in _FIRST],
    "first_ascii": [a for _, a in _FIRST],
    "last": [d for d, _ in _LAST],
    "last_ascii": [a for _, a in _LAST],
    "cjk_names": _CJK_NAMES,
    "nicknames": _NICKNAMES,
    "bios": _BIOS,
    "user_msgs": _USER_MSGS,
    "agent_intros": _AGENT_INTROS,
    "agent_bodies": _AGENT_BODIES,
    "system_msgs": _SYSTEM_MSGS,
    "conv_titles": _CONV_TITLES,
    "agent_names": _AGENT_NAMES,
    "agent_descs": _AGENT_DESCS,
    "prompts": _PROMPTS,
    "providers": [p for p, _ in _PROVIDERS],
    "models": [m for _, m in _PROVIDERS],
    "task_titles": _TASK_TITLES,
    "task_descs": _TASK_DESCS,
    "board_names": _BOARD_NAMES,
    "node_labels": _NODE_LABELS,
    "template_names": _TEMPLATE_NAMES,
    "feedback": _FEEDBACK,
    "user_agents": _USER_AGENTS,
    "timezones": _TIMEZONES,
    "langs": _LANGS,
}
_LIST_BASE = {name: (i + 1) * 1000 for i, name in enumerate(_LISTS)}


def _lit(value) -> str:
    """A SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _choice(values: Iterable, r: str) -> str:
    """A SQL expression choosing one of a few literal values uniformly by r."""
    values = list(values)
    arms = " ".join(f"WHEN {i} THEN {_lit(v)}" for i, v in enumerate(values[:-1]))
    return f"(CASE ({r}) % {len(values)} {arms} ELSE {_lit(values[-1])} END)"


def _weighted(arms: list[tuple[str, int]], r: str) -> str:
    """A SQL expression choosing one of several SQL expressions with the given integer weights."""
    total = sum(w for _, w in arms)
    parts, cum = [], 0
    for expr, w in arms[:-1]:
        cum += w
        parts.append(f"WHEN ({r}) % {total} < {cum} THEN {expr}")
    return f"(CASE {' '.join(parts)} ELSE {arms[-1][0]} END)"


def _band(arms: list[tuple[str, int]], which: int, r: str) -> str:
    """The SQL condition under which _weighted(arms, r) picks arm number `which`."""
    total = sum(w for _, w in arms)
    lo = sum(w for _, w in arms[:which])
    hi = lo + arms[which][1]
    return f"(({r}) % {total} >= {lo} AND ({r}) % {total} < {hi})"


def _pick(name: str, r: str) -> str:
    """A SQL expression picking an item of list `name` (through temp._lex) by r."""
    return f"(SELECT t FROM temp._lex WHERE id = {_LIST_BASE[name]} + ({r}) % {len(_LISTS[name])})"


def _ts(expr: str) -> str:
    return f"datetime({expr}, 'unixepoch')"


def _schema_statements() -> list[str]:
    """The statements of legacy_schema.sql, verbatim, split with sqlite3.complete_statement."""
    statements, buf = [], []
    for line in SCHEMA_FILE.read_text(encoding="utf-8").splitlines(keepends=True):
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf.append(line)
        text = "".join(buf)
        if sqlite3.complete_statement(text):
            statements.append(text.strip())
            buf = []
    if "".join(buf).strip():
        raise ValueError(f"{SCHEMA_FILE}: incomplete statement at the end")
    return statements


def _schema_by_table() -> tuple[dict[str, str], dict[str, list[str]]]:
    tables: dict[str, str] = {}
    indexes: dict[str, list[str]] = {}
    for stmt in _schema_statements():
        m = re.match(r"CREATE\s+TABLE\s+(\w+)", stmt, re.I)
        if m:
            tables[m.group(1)] = stmt
            continue
        m = re.match(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+\w+\s+ON\s+(\w+)", stmt, re.I)
        if m:
            indexes.setdefault(m.group(1), []).append(stmt)
            continue
        raise ValueError(f"{SCHEMA_FILE}: unexpected statement: {stmt[:60]}")
    return tables, indexes


class _Gen:
    def __init__(self, conn: sqlite3.Connection, seed: int, plan: dict[str, int], extras: bool,
                 progress: Callable[[str, int], None] | None):
        self.conn = conn
        self.seed = seed
        self.plan = plan
        self.extras = extras
        self.progress = progress
        self.U = plan["users"]
        self.C = plan["conversations"]
        self.B = plan["boards"]
        self.T = plan["tasks"]

    # ---- hashing -------------------------------------------------------------------------------

    def h(self, x: str, salt: str) -> str:
        """SQL for a pseudo-random integer in [0, 2^31-1) from integer expression x (>= 0, < 2^23)."""
        r = random.Random(f"dpro-example/{self.seed}/{salt}")
        a, b, c, d = r.randrange(1, _P), r.randrange(_P), r.randrange(_P), r.randrange(_P)
        x1 = f"(({x})*{a}+{b})%{_P}"
        x2 = f"(({x1})*({x1})+{c})%{_P}"
        return f"((({x2})*({x2})+{d})%{_P})"

    # Derived attributes shared between tables (the same expression gives the same value everywhere).
    def user_of(self, x: str, salt: str) -> str:
        return f"({self.h(x, salt)} % {self.U} + 1)"

    def user_created(self, u: str) -> str:
        return f"({T0} + {self.h(u, 'user.created')} % {SPAN - 60 * DAY})"

    def conv_user(self, k: str) -> str:
        return self.user_of(k, "conv.user")

    def conv_agent(self, k: str) -> str:
        cu = self.conv_user(k)
        return (f"(CASE WHEN {self.h(k, 'conv.agent_null')} % 10 = 0 THEN NULL "
                f"ELSE 2*{cu} - {self.h(k, 'conv.agent')} % 2 END)")

    def conv_created(self, k: str) -> str:
        return f"({T0} + {self.h(k, 'conv.created')} % {SPAN - 60 * DAY})"

    def board_user(self, b: str) -> str:
        return self.user_of(b, "board.user")

    def board_created(self, b: str) -> str:
        return f"({T0} + {self.h(b, 'board.created')} % {SPAN - 120 * DAY})"

    # ---- plumbing ------------------------------------------------------------------------------

    def fill(self, table: str, count: int, cte_cols: dict[str, str], insert_cols: dict[str, str]) -> None:
        """INSERT count rows into table, in batches. cte_cols: name -> template over {n}, computed once per
        row in the recursive counter; insert_cols: column -> SQL over n and the cte columns."""
        names = ", ".join(["n", *cte_cols])
        target = ", ".join(insert_cols)
        select = ", ".join(insert_cols.values())
        done = 0
        for lo in range(1, count + 1, BATCH):
            hi = min(count, lo + BATCH - 1)
            base = ", ".join([str(lo), *(t.replace("{n}", f"({lo})") for t in cte_cols.values())])
            step = ", ".join(["n+1", *(t.replace("{n}", "(n+1)") for t in cte_cols.values())])
            sql = (f"WITH RECURSIVE c({names}) AS (SELECT {base} UNION ALL SELECT {step} FROM c WHERE n < {hi}) "
                   f"INSERT INTO {table} ({target}) SELECT {select} FROM c")
            self.conn.execute("BEGIN")
            self.conn.execute(sql)
            self.conn.execute("COMMIT")
            done = hi
            if self.progress:
                self.progress(table, done)

    def rnd(self, *salts: str, table: str) -> dict[str, str]:
        """CTE columns r_<salt>: a pseudo-random integer per row."""
        return {f"r_{s}": self.h("{n}", f"{table}.{s}") for s in salts}

    # ---- tables --------------------------------------------------------------------------------

    def users(self) -> None:
        cte = self.rnd("first", "last", "cjk", "pw1", "pw2", "pw3", "act", "adm", "sub", "pref", "theme",
                       "login", "nick", table="users")
        cte["created"] = self.user_created("{n}")
        first_ascii, last_ascii = _pick("first_ascii", "r_first"), _pick("last_ascii", "r_last")
        username = f"({first_ascii} || '.' || {last_ascii} || n)"
        cols = {
            "id": "n",
            "username": username,
            "email": f"({username} || '@example.com')",
            "password_hash": ("'pbkdf2_sha256$600000$' || printf('%08x%04x', r_pw1, r_pw2 % 65536) || '$' || "
                              "printf('%08x%08x%08x%08x', r_pw1, r_pw2, r_pw3, (r_pw1 + r_pw3) % 2147483647)"),
            "full_name": (f"(CASE WHEN r_cjk % 12 = 0 THEN {_pick('cjk_names', 'r_first')} "
                          f"WHEN r_cjk % 25 = 1 THEN NULL "
                          f"ELSE {_pick('first', 'r_first')} || ' ' || {_pick('last', 'r_last')} END)"),
            "is_active": "(CASE WHEN r_act % 10 = 0 THEN 0 ELSE 1 END)",
            "is_admin": "(CASE WHEN n <= 2 OR r_adm % 100 = 0 THEN 1 ELSE 0 END)",
            "subscription_type": _weighted([("'free'", 70), ("'pro'", 20), ("'team'", 7), ("'enterprise'", 3)],
                                           "r_sub"),
            "preferences": (f"(CASE WHEN r_pref % 5 = 0 THEN NULL ELSE json_object("
                            f"'theme', {_choice(['light', 'dark', 'system'], 'r_theme')}, "
                            f"'language', {_pick('langs', 'r_pref')}, "
                            f"'notifications', json(CASE WHEN r_theme % 4 = 0 THEN 'false' ELSE 'true' END), "
                            f"'shortcuts', json_array('ctrl+k', 'ctrl+enter')) END)"),
            "last_login": f"(CASE WHEN r_login % 10 = 0 THEN NULL ELSE {_ts(f'created + r_login % {50 * DAY}')} END)",
            "created_at": _ts("created"),
            "updated_at": _ts(f"created + r_login % {50 * DAY} + 60"),
        }
        if self.extras:
            cols["nickname"] = f"(CASE WHEN r_nick % 3 = 0 THEN {_pick('nicknames', 'r_nick / 3')} ELSE NULL END)"
        self.fill("users", self.plan["users"], cte, cols)

    def user_settings(self) -> None:
        cte = self.rnd("theme", "lang", "tz", "notif", "upd", table="user_settings")
        cte["created"] = self.user_created("{n}")
        self.fill("user_settings", self.plan["user_settings"], cte, {
            "id": "n",
            "user_id": "n",
            "theme": _weighted([("'light'", 55), ("'dark'", 35), ("'system'", 10)], "r_theme"),
            "language": _pick("langs", "r_lang"),
            "timezone": _pick("timezones", "r_tz"),
            "notifications_enabled": "(CASE WHEN r_notif % 5 = 0 THEN 0 ELSE 1 END)",
            "settings": ("(CASE WHEN r_upd % 4 = 0 THEN NULL ELSE json_object("
                         "'font_size', 12 + r_upd % 6, 'compact', json(CASE WHEN r_notif % 2 = 0 THEN 'true' "
                         "ELSE 'false' END), 'sidebar', 'left') END)"),
            "created_at": _ts("created"),
            "updated_at": _ts(f"created + r_upd % {40 * DAY}"),
        })

    def user_profiles(self) -> None:
        cte = self.rnd("first", "emoji", "bio", "avatar", "style", "lang", "upd", table="user_profiles")
        cte["created"] = self.user_created("{n}")
        self.fill("user_profiles", self.plan["user_profiles"], cte, {
            "id": "n",
            "user_id": "n",
            "display_name": (f"({_pick('first', 'r_first')} || "
                             f"{_choice(['', '', '', ' 🚀', ' ✨', ' (she/her)', ' 🎧'], 'r_emoji')})"),
            "bio": f"(CASE WHEN r_bio % 4 = 0 THEN NULL ELSE {_pick('bios', 'r_bio / 4')} END)",
            "avatar_url": ("(CASE WHEN r_avatar % 3 = 0 THEN NULL ELSE "
                           "'https://cdn.example.com/avatars/' || printf('%08x', r_avatar) || '.png' END)"),
            "learning_style": _choice([None, "visual", "auditory", "reading", "kinesthetic"], "r_style"),
            "preferred_language": _pick("langs", "r_lang"),
            "profile_data": ("(CASE WHEN r_upd % 3 = 0 THEN NULL ELSE json_object("
                             "'onboarding_done', json(CASE WHEN r_upd % 2 = 0 THEN 'true' ELSE 'false' END), "
                             "'interests', json_array("
                             f"{_choice(['ai', 'python', 'writing', 'data', 'design', 'languages'], 'r_style / 5')}, "
                             f"{_choice(['productivity', 'research', 'music', 'travel'], 'r_upd / 3')})) END)"),
            "created_at": _ts("created"),
            "updated_at": _ts(f"created + r_upd % {45 * DAY}"),
        })

    def user_sessions(self) -> None:
        cte = self.rnd("t1", "t2", "t3", "dev", "ip", "ttl", "act", "created", table="user_sessions")
        cte["uid"] = self.user_of("{n}", "session.user")
        created = f"({T0} + r_created % {SPAN - 31 * DAY})"
        self.fill("user_sessions", self.plan["user_sessions"], cte, {
            "id": "n",
            "user_id": "uid",
            # Unique: the row number in hex, then a fixed-length random part.
            "session_token": "'sess_' || printf('%x', n) || '_' || printf('%08x%08x%08x', r_t1, r_t2, r_t3)",
            "device_info": (f"(CASE WHEN r_dev % 10 = 0 THEN NULL ELSE json_object("
                            f"'device', {_choice(['desktop', 'mobile', 'tablet'], 'r_dev')}, "
                            f"'os', {_choice(['Windows 11', 'macOS 14', 'Ubuntu 22.04', 'iOS 17', 'Android 14'], 'r_dev / 10')}, "
                            f"'browser', {_choice(['Chrome', 'Firefox', 'Safari', 'Edge', 'DPRO-Desktop'], 'r_ip')}) END)"),
            "ip_address": ("(CASE WHEN r_ip % 8 = 0 THEN printf('2001:db8:%x:%x::%x', r_ip % 65536, r_t1 % 65536, "
                           "r_t2 % 65536) ELSE printf('%d.%d.%d.%d', 10 + r_ip % 200, r_ip / 256 % 256, "
                           "r_ip / 65536 % 256, 1 + r_t1 % 254) END)"),
            "expires_at": _ts(f"{created} + (CASE WHEN r_ttl % 2 = 0 THEN {7 * DAY} ELSE {30 * DAY} END)"),
            "is_active": "(CASE WHEN r_act % 3 = 0 THEN 0 ELSE 1 END)",
            "created_at": _ts(created),
        })

    _ACTIONS = [("'login'", 20), ("'logout'", 8), ("'auth_failed'", 5), ("'password_reset'", 2),
                ("'send_message'", 20), ("'create_task'", 8), ("'update_task'", 7), ("'update_board'", 6),
                ("'create_board'", 3), ("'create_agent'", 4), ("'update_settings'", 4),
                ("'delete_conversation'", 3), ("'view_dashboard'", 7), ("'export_data'", 3)]

    def activity_logs(self) -> None:
        cte = self.rnd("act", "user", "res", "det", "ip", "ua", "created", table="activity_logs")
        acts = self._ACTIONS
        resource = {"'send_message'": ("'conversation'", self.C), "'create_task'": ("'task'", self.T),
                    "'update_task'": ("'task'", self.T), "'update_board'": ("'board'", self.B),
                    "'create_board'": ("'board'", self.B), "'create_agent'": ("'agent'", 2 * self.U),
                    "'delete_conversation'": ("'conversation'", self.C)}
        rtype = " ".join(f"WHEN {_band(acts, i, 'r_act')} THEN {resource[a][0]}"
                         for i, (a, _) in enumerate(acts) if a in resource)
        rid = " ".join(f"WHEN {_band(acts, i, 'r_act')} THEN 1 + r_res % {resource[a][1]}"
                       for i, (a, _) in enumerate(acts) if a in resource)
        failed = _band(acts, 2, "r_act")
        self.fill("activity_logs", self.plan["activity_logs"], cte, {
            "id": "n",
            "user_id": f"(CASE WHEN {failed} AND r_user % 3 = 0 THEN NULL ELSE r_user % {self.U} + 1 END)",
            "action": _weighted(acts, "r_act"),
            "resource_type": f"(CASE {rtype} ELSE NULL END)",
            "resource_id": f"(CASE {rid} ELSE NULL END)",
            "details": (f"(CASE WHEN r_det % 6 = 0 THEN NULL WHEN {failed} THEN json_object('reason', "
                        f"{_choice(['bad_password', 'unknown_user', 'expired_token', 'locked'], 'r_det')}, "
                        f"'attempt', 1 + r_det % 5) ELSE json_object('source', "
                        f"{_choice(['web', 'desktop', 'ios', 'android', 'api'], 'r_det / 6')}, "
                        f"'duration_ms', r_det % 900) END)"),
            "ip_address": "printf('%d.%d.%d.%d', 10 + r_ip % 200, r_ip / 256 % 256, r_ip / 65536 % 256, 1 + r_ua % 254)",
            "user_agent": f"(CASE WHEN r_ua % 20 = 0 THEN NULL ELSE {_pick('user_agents', 'r_ua / 20')} END)",
            "created_at": _ts(f"{T0} + r_created % {SPAN}"),
        })

    def agents(self) -> None:
        cte = self.rnd("parent", "name", "desc", "type", "model", "prompt", "temp", "tok", "perf", "act", "upd",
                       table="agents")
        cte["created"] = f"({self.user_created('(({n})+1)/2')} + {self.h('{n}', 'agents.created')} % {5 * DAY})"
        self.fill("agents", self.plan["agents"], cte, {
            "id": "n",
            "user_id": "(n + 1) / 2",
            # The second agent of a user sometimes derives from the first.
            "parent_agent_id": "(CASE WHEN n % 2 = 0 AND r_parent % 10 < 3 THEN n - 1 ELSE NULL END)",
            "name": _pick("agent_names", "r_name"),
            "description": f"(CASE WHEN r_desc % 5 = 0 THEN NULL ELSE {_pick('agent_descs', 'r_desc / 5')} END)",
            "agent_type": _choice(["general", "research", "coding", "writing", "analysis", "support"], "r_type"),
            "model_provider": _pick("providers", "r_model"),
            "model_name": _pick("models", "r_model"),
            "configuration": ("(CASE WHEN r_upd % 4 = 0 THEN NULL ELSE json_object('tools', json_array("
                              f"{_choice(['web_search', 'calculator', 'code_runner', 'pdf_reader'], 'r_upd')}), "
                              "'memory', json(CASE WHEN r_upd % 2 = 0 THEN 'true' ELSE 'false' END), "
                              "'top_p', (r_upd % 11) / 10.0) END)"),
            "system_prompt": f"(CASE WHEN r_prompt % 6 = 0 THEN NULL ELSE {_pick('prompts', 'r_prompt / 6')} END)",
            "temperature": "round((r_temp % 201) / 100.0, 2)",
            "max_tokens": _choice([1000, 2000, 4000, 4000, 8000, 16000], "r_tok"),
            "performance_score": "round((r_perf % 1001) / 1000.0, 3)",
            "is_active": "(CASE WHEN r_act % 8 = 0 THEN 0 ELSE 1 END)",
            "created_at": _ts("created"),
            "updated_at": _ts(f"created + r_upd % {30 * DAY}"),
        })

    def conversations(self) -> None:
        cte = self.rnd("title", "act", "meta", "upd", table="conversations")
        self.fill("conversations", self.plan["conversations"], cte, {
            "id": "n",
            "user_id": self.conv_user("n"),
            "agent_id": self.conv_agent("n"),
            "title": f"(CASE WHEN r_title % 20 = 0 THEN NULL ELSE {_pick('conv_titles', 'r_title / 20')} END)",
            "is_active": "(CASE WHEN r_act % 4 = 0 THEN 0 ELSE 1 END)",
            "metadata": (f"(CASE WHEN r_meta % 3 = 0 THEN NULL ELSE json_object("
                         f"'source', {_choice(['web', 'desktop', 'mobile', 'api'], 'r_meta')}, "
                         f"'pinned', json(CASE WHEN r_meta % 7 = 0 THEN 'true' ELSE 'false' END), "
                         f"'tags', json_array({_choice(['work', 'personal', 'learning', 'code', 'travel'], 'r_meta / 3')})) END)"),
            "created_at": _ts(self.conv_created("n")),
            "updated_at": _ts(f"{self.conv_created('n')} + 3600 + r_upd % {20 * DAY}"),
        })

    def messages(self) -> None:
        m, C = self.plan["messages"], self.C
        if m == 0:
            return
        # Messages are laid out conversation by conversation: message n belongs to conversation k and is
        # its pos-th message (0-based); users and agents take turns, a few system notes in between.
        k = f"((({{n}})-1)*{C}/{m}+1)"
        cte = {
            "k": k,
            "pos": f"(((({{n}})-1)*{C}) % {m}) / {C}",
            "cu": self.conv_user(k),
            "ca": self.conv_agent(k),
            "ce": self.conv_created(k),
            **self.rnd("kind", "c1", "c2", "type", "tok", "meta", "snt", table="messages"),
        }
        is_sys = "r_kind % 40 = 0"
        is_user = f"NOT ({is_sys}) AND pos % 2 = 0"
        is_agent = f"NOT ({is_sys}) AND pos % 2 = 1"
        cols = {
            "id": "n",
            "conversation_id": "k",
            "user_id": f"(CASE WHEN {is_user} THEN cu ELSE NULL END)",
            "agent_id": f"(CASE WHEN {is_agent} THEN coalesce(ca, 2*cu - 1) ELSE NULL END)",
            "sender_type": f"(CASE WHEN {is_sys} THEN 'system' WHEN pos % 2 = 0 THEN 'user' ELSE 'agent' END)",
            "content": (f"(CASE WHEN {is_sys} THEN {_pick('system_msgs', 'r_c1')} "
                        f"WHEN pos % 2 = 0 THEN {_pick('user_msgs', 'r_c1')} "
                        f"ELSE {_pick('agent_intros', 'r_c1')} || ' ' || {_pick('agent_bodies', 'r_c2')} END)"),
            "message_type": (f"(CASE WHEN {is_sys} THEN 'system' WHEN pos % 2 = 0 THEN "
                             f"{_weighted([(_lit('text'), 94), (_lit('image'), 2), (_lit('file'), 4)], 'r_type')} "
                             f"ELSE {_weighted([(_lit('text'), 85), (_lit('code'), 10), (_lit('markdown'), 5)], 'r_type')} END)"),
            "tokens_used": f"(CASE WHEN {is_sys} THEN 0 WHEN pos % 2 = 0 THEN 5 + r_tok % 200 ELSE 40 + r_tok % 1500 END)",
            "response_time_ms": f"(CASE WHEN {is_agent} THEN 250 + r_tok % 7800 ELSE NULL END)",
            "metadata": (f"(CASE WHEN {is_agent} THEN json_object('model', {_pick('models', 'r_meta')}, "
                         f"'finish_reason', {_weighted([(_lit('stop'), 95), (_lit('length'), 5)], 'r_meta / 8')}) "
                         f"WHEN r_meta % 4 = 0 THEN json_object('client', "
                         f"{_choice(['web', 'desktop', 'ios', 'android'], 'r_meta / 4')}) ELSE NULL END)"),
            "created_at": _ts("ce + pos * 95 + r_kind % 90"),
        }
        if self.extras:
            cols["sentiment"] = "(CASE WHEN r_snt % 5 < 2 THEN NULL ELSE round(((r_snt / 5) % 2001 - 1000) / 1000.0, 3) END)"
        self.fill("messages", m, cte, cols)

    _EVENTS = [("'message_sent'", 35), ("'message_received'", 35), ("'session_start'", 8), ("'session_end'", 8),
               ("'typing'", 8), ("'reconnect'", 3), ("'error'", 3)]

    def chat_session_history(self) -> None:
        cte = self.rnd("nul", "conv", "ev", "pay", "t", "user", table="chat_session_history")
        k = f"({self.h('{n}', 'chat.conv')} % {self.C} + 1)"
        cte["k"] = f"(CASE WHEN {self.h('{n}', 'chat.null')} % 20 = 0 THEN NULL ELSE {k} END)"
        # Events of one conversation share its session id.
        cte["sid"] = (f"printf('%08x%08x%08x%08x', {self.h(k, 'chat.s1')}, {self.h(k, 'chat.s2')}, "
                      f"{self.h(k, 'chat.s3')}, {self.h(k, 'chat.s4')})")
        cte["cu"] = self.conv_user(k)
        cte["ce"] = self.conv_created(k)
        self.fill("chat_session_history", self.plan["chat_session_history"], cte, {
            "id": "n",
            "session_id": "(CASE WHEN k IS NULL THEN printf('%08x%08x%08x%08x', r_nul, r_conv, r_ev, r_pay) ELSE sid END)",
            "conversation_id": "k",
            "user_id": f"(CASE WHEN k IS NOT NULL THEN cu WHEN r_user % 3 = 0 THEN NULL ELSE r_user % {self.U} + 1 END)",
            "event": _weighted(self._EVENTS, "r_ev"),
            "payload": (f"(CASE WHEN r_pay % 5 = 0 THEN NULL ELSE json_object("
                        f"'client', {_choice(['web', 'desktop', 'ios', 'android'], 'r_pay')}, "
                        f"'latency_ms', r_pay % 480, 'seq', r_t % 40) END)"),
            "created_at": _ts(f"(CASE WHEN k IS NULL THEN {T0} + r_t % {SPAN - 60 * DAY} ELSE ce END) + r_t % 7200"),
        })

    _STATUS = [("'pending'", 35), ("'in_progress'", 25), ("'completed'", 30), ("'cancelled'", 10)]

    def tasks(self) -> None:
        cte = self.rnd("asg", "agent", "title", "desc", "st", "pri", "cat", "due", "done", "created", "upd",
                       table="tasks")
        cte["uid"] = self.user_of("{n}", "tasks.user")
        created = f"({T0} + r_created % {SPAN - 120 * DAY})"
        completed = _band(self._STATUS, 2, "r_st")
        done_at = f"{created} + 3600 + r_done % {30 * DAY}"
        self.fill("tasks", self.plan["tasks"], cte, {
            "id": "n",
            "user_id": "uid",
            "assigned_to": f"(CASE WHEN r_asg % 5 < 3 THEN NULL ELSE r_asg % {self.U} + 1 END)",
            "agent_id": "(CASE WHEN r_agent % 2 = 0 THEN NULL ELSE 2*uid - (r_agent / 2) % 2 END)",
            "title": _pick("task_titles", "r_title"),
            "description": f"(CASE WHEN r_desc % 3 = 0 THEN NULL ELSE {_pick('task_descs', 'r_desc / 3')} END)",
            "status": _weighted(self._STATUS, "r_st"),
            "priority": _weighted([("'low'", 25), ("'medium'", 40), ("'high'", 25), ("'urgent'", 10)], "r_pri"),
            "category": _choice([None, "work", "personal", "research", "learning", "health", "finance"], "r_cat"),
            "due_date": f"(CASE WHEN r_due % 10 < 3 THEN NULL ELSE {_ts(f'{created} + {DAY} + r_due % {60 * DAY}')} END)",
            "completed_at": f"(CASE WHEN {completed} THEN {_ts(done_at)} ELSE NULL END)",
            "created_at": _ts(created),
            "updated_at": f"(CASE WHEN {completed} THEN {_ts(done_at)} ELSE {_ts(f'{created} + r_upd % {10 * DAY}')} END)",
        })

    def boards(self) -> None:
        cte = self.rnd("name", "desc", "type", "pub", "cfg", "upd", table="boards")
        self.fill("boards", self.plan["boards"], cte, {
            "id": "n",
            "user_id": self.board_user("n"),
            "name": _pick("board_names", "r_name"),
            "description": f"(CASE WHEN r_desc % 3 = 0 THEN NULL ELSE 'Board for ' || lower({_pick('board_names', 'r_desc / 3')}) END)",
            "board_type": _weighted([("'workflow'", 60), ("'kanban'", 20), ("'mindmap'", 10), ("'automation'", 10)],
                                    "r_type"),
            "is_public": "(CASE WHEN r_pub % 5 = 0 THEN 1 ELSE 0 END)",
            "config": ("(CASE WHEN r_cfg % 5 = 0 THEN NULL ELSE json_object('zoom', (5 + r_cfg % 15) / 10.0, "
                       "'grid', json(CASE WHEN r_cfg % 2 = 0 THEN 'true' ELSE 'false' END), "
                       f"'theme', {_choice(['light', 'dark'], 'r_cfg / 5')}) END)"),
            "created_at": _ts(self.board_created("n")),
            "updated_at": _ts(f"{self.board_created('n')} + r_upd % {60 * DAY}"),
        })

    def board_nodes(self) -> None:
        cte = self.rnd("label", "x", "y", "cfg", table="board_nodes")
        cte["b"] = "((({n})-1)/6+1)"
        cte["j"] = "((({n})-1)%6)"
        self.fill("board_nodes", self.plan["board_nodes"], cte, {
            "id": "n",
            "board_id": "b",
            "node_type": _choice(["trigger", "agent", "tool", "condition", "agent", "output"], "j"),
            "label": f"(CASE WHEN j = 0 THEN 'Start' ELSE {_pick('node_labels', 'r_label')} END)",
            "position_x": "100 + j * 220 + r_x % 40",
            "position_y": "80.0 + r_y % 300",
            "config": ("(CASE WHEN r_cfg % 4 = 0 THEN NULL ELSE json_object('timeout_s', 30 + r_cfg % 90, "
                       "'retries', r_cfg % 4) END)"),
            "created_at": _ts(f"{self.board_created('b')} + j * 60"),
        })

    def board_connections(self) -> None:
        # Each board's six nodes form a chain: node j -> node j+1.
        cte = self.rnd("cond", table="board_connections")
        cte["b"] = "((({n})-1)/5+1)"
        cte["j"] = "((({n})-1)%5)"
        self.fill("board_connections", self.plan["board_connections"], cte, {
            "id": "n",
            "board_id": "b",
            "source_node_id": "(b - 1) * 6 + j + 1",
            "target_node_id": "(b - 1) * 6 + j + 2",
            "condition": ("(CASE WHEN j = 3 THEN json_object('if', 'score > ' || ((r_cond % 9 + 1) / 10.0)) "
                          "ELSE NULL END)"),
            "created_at": _ts(f"{self.board_created('b')} + 400 + j * 60"),
        })

    _EXEC = [("'completed'", 70), ("'failed'", 15), ("'running'", 5), ("'cancelled'", 10)]

    def board_executions(self) -> None:
        cte = self.rnd("user", "st", "in", "start", "dur", table="board_executions")
        cte["b"] = "((({n})-1)/4+1)"
        cte["bu"] = self.board_user("((({n})-1)/4+1)")
        cte["started"] = f"({self.board_created('((({n})-1)/4+1)')} + {DAY} + {self.h('{n}', 'exec.start')} % {90 * DAY})"
        ex = self._EXEC
        self.fill("board_executions", self.plan["board_executions"], cte, {
            "id": "n",
            "board_id": "b",
            "user_id": "(CASE WHEN r_user % 10 = 0 THEN NULL ELSE bu END)",
            "status": _weighted(ex, "r_st"),
            "input_data": (f"json_object('query', {_pick('user_msgs', 'r_in')}, 'lang', {_pick('langs', 'r_in / 7')})"),
            "output_data": (f"(CASE WHEN {_band(ex, 0, 'r_st')} THEN json_object('result', "
                            f"{_pick('agent_bodies', 'r_in')}, 'steps', 6, 'tokens', 100 + r_dur % 3000) ELSE NULL END)"),
            "error_message": (f"(CASE WHEN {_band(ex, 1, 'r_st')} THEN {_choice(_ERRORS, 'r_dur')} ELSE NULL END)"),
            "started_at": _ts("started"),
            "finished_at": f"(CASE WHEN {_band(ex, 2, 'r_st')} THEN NULL ELSE {_ts('started + 1 + r_dur % 600')} END)",
        })

    def board_templates(self) -> None:
        cte = self.rnd("desc", "cat", "data", "pub", "by", "created", table="board_templates")
        names = len(_TEMPLATE_NAMES)
        self.fill("board_templates", self.plan["board_templates"], cte, {
            "id": "n",
            "name": (f"({_pick('template_names', 'n - 1')} || CASE WHEN n > {names} "
                     f"THEN ' v' || ((n - 1) / {names} + 1) ELSE '' END)"),
            "description": f"(CASE WHEN r_desc % 4 = 0 THEN NULL ELSE 'Ready-made board: ' || lower({_pick('template_names', 'n - 1')}) END)",
            "category": _choice(["support", "research", "content", "sales", "productivity", "developer"], "r_cat"),
            "template_data": ("json_object('nodes', 6, 'connections', 5, 'version', 1 + r_data % 3, "
                              f"'entry', {_choice(['trigger', 'webhook', 'schedule'], 'r_data / 3')})"),
            "is_public": "(CASE WHEN r_pub % 5 = 0 THEN 0 ELSE 1 END)",
            "created_by": f"(CASE WHEN r_by % 5 < 2 THEN NULL ELSE r_by % {self.U} + 1 END)",
            "created_at": _ts(f"{T0} + r_created % {SPAN}"),
        })

    def workflows(self) -> None:
        cte = self.rnd("user", "name", "st", "def", "created", "upd", table="workflows")
        cte["wb"] = (f"(CASE WHEN {self.h('{n}', 'wf.nob')} % 10 < 3 THEN NULL "
                     f"ELSE {self.h('{n}', 'wf.board')} % {self.B} + 1 END)")
        self.fill("workflows", self.plan["workflows"], cte, {
            "id": "n",
            "board_id": "wb",
            "user_id": f"(CASE WHEN wb IS NULL THEN r_user % {self.U} + 1 ELSE {self.board_user('wb')} END)",
            "name": f"({_pick('board_names', 'r_name')} || ' workflow')",
            "status": _weighted([("'draft'", 35), ("'active'", 40), ("'paused'", 15), ("'archived'", 10)], "r_st"),
            "definition": ("(CASE WHEN r_def % 6 = 0 THEN NULL ELSE json_object('steps', json_array('fetch', "
                           f"{_choice(['summarize', 'classify', 'translate', 'extract'], 'r_def')}, 'notify'), "
                           "'schedule', " + _choice(['@daily', '@hourly', '0 9 * * 1-5', None], 'r_def / 6') + ") END)"),
            "created_at": _ts(f"{T0} + r_created % {SPAN - 60 * DAY}"),
            "updated_at": _ts(f"{T0} + r_created % {SPAN - 60 * DAY} + r_upd % {50 * DAY}"),
        })

    def system_info(self) -> None:
        rng = random.Random(f"dpro-example/{self.seed}/system_info")
        rows = []
        for i, (key, value, category, description, public) in enumerate(_SYSTEM_INFO, start=1):
            when = T0 + rng.randrange(SPAN)
            rows.append((i, key, value, category, description, public, when))
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO system_info (id, key, value, category, description, is_public, updated_at) "
                              "VALUES (?, ?, ?, ?, ?, ?, datetime(?, 'unixepoch'))", rows)
        self.conn.execute("COMMIT")
        if self.progress:
            self.progress("system_info", len(rows))

    def marketplace_tools(self) -> None:
        rng = random.Random(f"dpro-example/{self.seed}/marketplace_tools")
        rows = []
        for i, (name, description, category, author) in enumerate(_TOOLS, start=1):
            rows.append((i, name, description, category, f"{rng.randrange(1, 4)}.{rng.randrange(10)}.{rng.randrange(10)}",
                         author, round(rng.uniform(2.5, 5.0), 1), rng.randrange(0, 250_000),
                         0 if rng.random() < 0.1 else 1, 1 if rng.random() < 0.5 else 0, T0 + rng.randrange(SPAN)))
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO marketplace_tools (id, name, description, category, version, author, rating, "
                              "download_count, is_active, is_verified, created_at) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, datetime(?, 'unixepoch'))", rows)
        self.conn.execute("COMMIT")
        if self.progress:
            self.progress("marketplace_tools", len(rows))

    def legacy_feedback(self, count: int) -> None:
        cte = self.rnd("user", "text", "created", table="legacy_feedback")
        self.fill("legacy_feedback", count, cte, {
            "id": "n",
            "user_id": f"(CASE WHEN r_user % 10 = 0 THEN NULL ELSE r_user % {self.U} + 1 END)",
            "comment": _pick("feedback", "r_text"),
            "created_at": _ts(f"{T0} + r_created % {SPAN}"),
        })


def generate_legacy_db(path: str | os.PathLike, *, messages: int = 1000, shape: str = "18", seed: int = 0,
                       extras: bool = False, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Create a legacy DPRO database at path (must not exist; raise FileExistsError) and return row counts per table.

    messages: rows in messages (0 allowed); the other tables follow row_plan(messages): about 461,500 rows
    besides the messages at messages=1,000,000. shape: "18", "13" or "14" (see SHAPES). seed: the content is
    a pure function of (messages, shape, seed, extras): identical files for identical arguments (no use of
    SQLite's random()). extras: add what real installations carry: hand-added columns users.nickname and
    messages.sentiment, an unknown table legacy_feedback, a view active_users and a trigger
    trg_legacy_tasks_touch. progress(table, rows_done) is called after each batch.

    The file is generated with journal_mode=OFF and synchronous=OFF (it is new; a crash leaves nothing
    worth keeping: on error the file is removed) and ends as a normal rollback-journal (DELETE) database.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")
    if isinstance(messages, bool) or not isinstance(messages, int) or messages < 0:
        raise ValueError(f"messages must be an integer >= 0, not {messages!r}")
    if not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, not {seed!r}")
    tables = SHAPES[shape]
    ddl, indexes = _schema_by_table()
    plan = row_plan(messages)

    path = os.fspath(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # FileExistsError if it exists
    os.close(fd)
    conn = None
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-16384")
        conn.execute("CREATE TEMP TABLE _lex (id INTEGER PRIMARY KEY, t TEXT NOT NULL)")
        conn.executemany("INSERT INTO temp._lex VALUES (?, ?)",
                         [(_LIST_BASE[name] + i, t) for name, items in _LISTS.items() for i, t in enumerate(items)])

        conn.execute("BEGIN")
        for table in tables:
            conn.execute(ddl[table])
        if extras:
            conn.execute("ALTER TABLE users ADD COLUMN nickname VARCHAR(40)")
            conn.execute("ALTER TABLE messages ADD COLUMN sentiment REAL")
            conn.execute("CREATE TABLE legacy_feedback(id INTEGER PRIMARY KEY, user_id INTEGER, comment TEXT, "
                         "created_at TIMESTAMP)")
        conn.execute("COMMIT")

        gen = _Gen(conn, seed, plan, extras, progress)
        for table in tables:
            getattr(gen, table)()
        counts = {table: plan[table] for table in tables}
        if extras:
            counts["legacy_feedback"] = max(3, plan["users"] // 5)
            gen.legacy_feedback(counts["legacy_feedback"])

        # Indexes after the data (same result, faster), views and triggers last.
        conn.execute("BEGIN")
        for table in tables:
            for stmt in indexes.get(table, []):
                conn.execute(stmt)
        if extras:
            conn.execute("CREATE VIEW active_users AS SELECT id, username, email FROM users WHERE is_active = 1")
            conn.execute("CREATE TRIGGER trg_legacy_tasks_touch AFTER UPDATE ON tasks BEGIN "
                         "UPDATE tasks SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id; END")
        conn.execute("COMMIT")
        conn.execute("DROP TABLE temp._lex")
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=FULL")
        conn.close()
        conn = None
        return counts
    except BaseException:
        if conn is not None:
            conn.close()
        for leftover in (path, path + "-journal"):
            try:
                os.unlink(leftover)
            except OSError:
                pass
        raise
