"""The code an Alembic environment written by dpro-migrate runs, copied into it as the package dpro_baseline/.

Every module here imports only the standard library, SQLAlchemy and Alembic (and its siblings, relatively):
the environment runs in the application's virtualenv, which has no dpro-migrate. dpro-migrate itself uses the
same modules (its drift check, its own runs of Alembic), so what it checks is what the environment does.
environment.py copies FILES and writes the package's __init__.py and schema.py (the baseline's tables).
"""

# Copied verbatim into <environment>/dpro_baseline/.
FILES = ("options.py", "runtime.py", "sqlite_batch.py", "types.py", "connections.py")
