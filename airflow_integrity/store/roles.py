"""Two PostgreSQL roles for the store: an owner that migrates, and a runtime role that can only record.

The append-only triggers of the audit trail and of the ledger history hold against everyone but the owner of
their tables, who may ``ALTER TABLE ... DISABLE TRIGGER``, drop them, or drop the tables. A regulated
deployment therefore migrates as an owner role and connects every Airflow component as a runtime role that
owns nothing and holds exactly what the product's code paths use (each was run as that role in the tests):

* tables: SELECT, and INSERT granted per column, never on the table as a whole: every column but those the
  database fills in itself (an identity or generated column, a default that calls a sequence) and the
  ``_NOT_INSERTED`` columns a trigger sets (``txid``, ``recorded_at`` and ``seal`` of the intake), which
  covers every column the product's INSERT statements name. So no row chooses its id (just ahead of a
  sequence, it would make every later insert of the product clash with it) or a value the database vouches
  for. Intake rows, checkpoints, ledger rows, large results and validation results are only ever added.
  Except: SELECT only on ``integrity_audit_event`` and ``integrity_ledger_history``, which only the owner's
  SECURITY DEFINER functions write (``integrity_audit_chain``; ``integrity_ledger_note`` and the ledger's
  history triggers), and on the version table, ``integrity_store_info`` and ``integrity_validation_secret``,
  which processes read; and UPDATE too on ``integrity_ledger``, whose row a claim, lease renewal, completion,
  failure and release update (DELETE stays refused there too);
* sequences: USAGE (``nextval``) on those a column default of a table it inserts into calls (serial ids), none
  on an identity column's, which the database numbers whatever the inserting role holds; UPDATE only on
  ``integrity_audit_flush_seq``, which ``integrity_audit_append`` moves with ``setval`` so that its commit
  waits for the WAL flush (a sequence's UPDATE privilege reaches no table row);
* functions and procedures: EXECUTE (the chaining function, the append procedure, the ledger's note, the
  functions the intake's stamp trigger calls with the inserting role's rights, ...), except trigger
  functions: triggers fire without it;
* the store's schema: USAGE; the database: CONNECT.

:func:`grant_runtime_role` computes this from what the store's schema holds when it runs (every table,
view, sequence, function and procedure named ``integrity_*`` in the schema of the version table), grants it,
and revokes everything else on those objects from the runtime role and from PUBLIC, with CREATE on the
schema and CREATE and TEMPORARY on the database: the runtime role can create no object anywhere in the
store. Run again after every migration, it covers the objects and columns the migration added; a migration
whose object needs something else must say so in ``_EXCEPTIONS`` (a column a trigger sets, in
``_NOT_INSERTED``). :func:`check_runtime_role` then asks the server what the role can effectively do,
through PUBLIC and the roles it belongs to as well (an INSERT on a whole table, or into a column the product
never names, included), and names every difference with its fix; so does ``airflow integrity db check
--runtime-role``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from airflow_integrity.store import migrate
from airflow_integrity.store.errors import SchemaNotCurrentError, StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from airflow_integrity.store.store import IntegrityStore

_PREFIX = "integrity\\_%"
_EXCEPTIONS: dict[str, tuple[str, ...]] = {
    migrate.VERSION_TABLE: ("SELECT",),
    "integrity_store_info": ("SELECT",),
    "integrity_validation_secret": ("SELECT",),
    # Written only by the owner's SECURITY DEFINER functions (integrity_audit_chain; integrity_ledger_note and
    # the ledger's history triggers): an INSERT of the runtime role could forge events or history.
    "integrity_audit_event": ("SELECT",),
    "integrity_ledger_history": ("SELECT",),
    "integrity_ledger": ("SELECT", "INSERT", "UPDATE"),
    "integrity_audit_flush_seq": ("UPDATE",),
}
# INSERT is granted per column: every column but those the database fills itself (identity, generated, and a
# default that calls a sequence, so no row can take a number ahead of the sequence) and these, which a
# trigger sets whatever the insert says.
_NOT_INSERTED: dict[str, tuple[str, ...]] = {
    "integrity_audit_intake": ("txid", "recorded_at", "seal"),
}
_DEFAULTS = {"table": ("SELECT", "INSERT"), "view": ("SELECT",), "sequence": ("USAGE",), "routine": ("EXECUTE",)}
_KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "view", "S": "sequence"}
_KEYWORD = {"table": "TABLE", "view": "TABLE", "sequence": "SEQUENCE", "routine": "ROUTINE"}
# Every privilege an object of each kind can carry (MAINTAIN from PostgreSQL 17), and how to ask for it.
_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
_ASK = {
    "table": "CASE WHEN p.priv IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES') "
    "THEN has_any_column_privilege(CAST(:role AS name), CAST(:oid AS oid), p.priv) "
    "ELSE has_table_privilege(CAST(:role AS name), CAST(:oid AS oid), p.priv) END",
    "sequence": "has_sequence_privilege(CAST(:role AS name), CAST(:oid AS oid), p.priv)",
    "routine": "has_function_privilege(CAST(:role AS name), CAST(:oid AS oid), p.priv)",
}
# Where the grants on an object of each kind are kept (a table's column grants included).
_RELATION_ACL = "SELECT COALESCE(relacl, acldefault('r', relowner)) FROM pg_class WHERE oid = :oid"
_COLUMN_ACL = "SELECT attacl FROM pg_attribute WHERE attrelid = :oid AND attname = :column"
_TABLE_ACL = f"{_RELATION_ACL} UNION ALL SELECT attacl FROM pg_attribute WHERE attrelid = :oid"
_ACL = {
    "table": _TABLE_ACL,
    "view": _TABLE_ACL,
    "sequence": "SELECT COALESCE(relacl, acldefault('s', relowner)) FROM pg_class WHERE oid = :oid",
    "routine": "SELECT COALESCE(proacl, acldefault('f', proowner)) FROM pg_proc WHERE oid = :oid",
}


class RuntimeRoleError(StoreError, ValueError):
    """The runtime role cannot be set up as asked, or can do more (or less) than the product needs."""


@dataclass(frozen=True)
class StoreObject:
    """A table, view, sequence or routine of the store and what the runtime role gets on it."""

    kind: str
    name: str
    oid: int
    owner: str
    privileges: tuple[str, ...]
    #: With INSERT among ``privileges``: the columns it is granted on (never the table as a whole), and the
    #: table's other columns, which the database fills in itself.
    insert_columns: tuple[str, ...] = ()
    withheld: tuple[str, ...] = ()

    def described(self) -> tuple[str, ...]:
        """The privileges as a summary names them, INSERT with the columns it leaves out."""
        if "INSERT" not in self.privileges:
            return self.privileges
        columns = f"every column but {', '.join(self.withheld)}" if self.withheld else "every column"
        return tuple(f"INSERT ({columns})" if priv == "INSERT" else priv for priv in self.privileges)


@dataclass(frozen=True)
class RuntimeGrants:
    """What :func:`grant_runtime_role` left the runtime role with."""

    role: str
    schema: str
    database: str
    objects: tuple[StoreObject, ...]

    def summary(self) -> list[str]:
        """One line per set of privileges, naming the objects that carry it."""
        groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for obj in self.objects:
            kind = "routine" if obj.kind == "routine" else "sequence" if obj.kind == "sequence" else "table"
            groups.setdefault((kind, obj.described()), []).append(obj.name)
        why = {
            "routine": " (trigger functions fire without it)",
            "sequence": " (identity columns, and tables it does not insert into)",
        }
        lines = [
            f"  {', '.join(privileges) or 'no privilege'} on {kind}s: {', '.join(names)}"
            f"{'' if privileges else why.get(kind, '')}"
            for (kind, privileges), names in sorted(groups.items())
        ]
        return [
            f"Runtime role {self.role!r} may CONNECT to {self.database} and use schema {self.schema}, and holds:",
            *lines,
            "  and nothing else: no INSERT into the audit chain or the ledger history (the store's own functions "
            "write them), no INSERT of an id or of a column the database sets, no UPDATE, DELETE or TRUNCATE of "
            "the audit trail or the ledger history, no DDL, no trigger changes.",
        ]


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def _column(conn: Connection, name: str) -> str:
    """A column name, quoted only where SQL needs it."""
    return conn.dialect.identifier_preparer.quote(name)


def _grantee(conn: Connection, name: str) -> str:
    return name if name == "PUBLIC" else _quote(conn, name)


def _require_postgres(store: IntegrityStore, role: str) -> None:
    if store.backend != "postgresql":
        raise RuntimeRoleError(
            f"The integrity store {store.location.display} is an SQLite file, which has no roles: a runtime role "
            f"({role!r}) can only be set up on a PostgreSQL store. Point the connection at PostgreSQL."
        )


def _role(conn: Connection, role: str) -> dict[str, Any]:
    row = conn.execute(
        text("SELECT rolsuper, rolcreaterole, rolname = current_user FROM pg_roles WHERE rolname = :role"),
        {"role": role},
    ).first()
    if row is None:
        raise RuntimeRoleError(
            f"PostgreSQL role {role!r} does not exist. Create it first, as a superuser or a role with "
            f"CREATEROLE: CREATE ROLE {_quote(conn, role)} LOGIN PASSWORD '...';"
        )
    return {"superuser": row[0], "createrole": row[1], "is_current": row[2]}


def _usable_role(conn: Connection, role: str) -> dict[str, Any]:
    facts = _role(conn, role)
    if facts["is_current"]:
        raise RuntimeRoleError(
            f"{role!r} is the role this command connects as (the store's owner). The runtime role must be "
            "another role: the owner of a table can disable its triggers. Create one (CREATE ROLE "
            "integrity_runtime LOGIN PASSWORD '...') and name it with --runtime-role."
        )
    if facts["superuser"]:
        raise RuntimeRoleError(
            f"Runtime role {role!r} is a superuser, which can alter any table and disable any trigger "
            f"whatever is granted. Use a role without SUPERUSER (ALTER ROLE {_quote(conn, role)} NOSUPERUSER)."
        )
    return facts


def require_runtime_role(store: IntegrityStore, role: str) -> None:
    """Check, before migrating, that ``role`` can become the store's runtime role at all.

    Raises:
        RuntimeRoleError: The store is not PostgreSQL, or the role does not exist, is the role this process
            connects as, or is a superuser.
    """
    _require_postgres(store, role)
    with store.read() as conn:
        _usable_role(conn, role)


def _schema(conn: Connection, store: IntegrityStore) -> tuple[int, str]:
    row = conn.execute(
        text(
            "SELECT c.relnamespace, c.relnamespace::regnamespace::text FROM pg_class AS c "
            "WHERE c.oid = to_regclass(:t)"
        ),
        {"t": migrate.VERSION_TABLE},
    ).first()
    if row is None:
        raise RuntimeRoleError(
            f"The integrity store {store.location.display} has no schema yet. Run `airflow integrity db migrate` "
            "as its owner role first."
        )
    return int(row[0]), str(row[1])


def store_objects(conn: Connection, schema_oid: int) -> list[StoreObject]:
    """Every table, view, sequence, function and procedure of the store, with the runtime role's privileges."""
    objects = []
    inserts: set[int] = set()
    for oid, name, relname, relkind, owner in conn.execute(
        text(
            "SELECT c.oid, c.oid::regclass::text, c.relname, c.relkind, pg_get_userbyid(c.relowner) "
            "FROM pg_class AS c WHERE c.relnamespace = :schema AND c.relkind IN ('r', 'p', 'f', 'v', 'm') "
            "AND c.relname LIKE :prefix ORDER BY c.relname"
        ),
        {"schema": schema_oid, "prefix": _PREFIX},
    ):
        kind = _KINDS[relkind]
        privileges = _EXCEPTIONS.get(relname, _DEFAULTS[kind])
        insert_columns: tuple[str, ...] = ()
        withheld: tuple[str, ...] = ()
        if "INSERT" in privileges:
            columns = _columns(conn, oid)
            not_inserted = set(_NOT_INSERTED.get(relname, ()))
            insert_columns = tuple(c for c, filled in columns if not filled and c not in not_inserted)
            withheld = tuple(c for c, _ in columns if c not in insert_columns)
            if insert_columns:
                inserts.add(oid)
            else:
                privileges = tuple(priv for priv in privileges if priv != "INSERT")
        objects.append(StoreObject(kind, name, oid, owner, privileges, insert_columns, withheld))
    for oid, name, relname, owner, fed, owned in conn.execute(
        text(
            "SELECT c.oid, c.oid::regclass::text, c.relname, pg_get_userbyid(c.relowner), "
            # The tables whose column defaults call it (a serial column's nextval(), or any other default) ...
            "ARRAY(SELECT DISTINCT ad.adrelid::bigint FROM pg_depend AS d "
            " JOIN pg_attrdef AS ad ON ad.oid = d.objid "
            " WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass "
            " AND d.refobjid = c.oid), "
            # ... and whether a column owns it (identity or serial column).
            "EXISTS (SELECT 1 FROM pg_depend AS d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
            " AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')) "
            "FROM pg_class AS c WHERE c.relnamespace = :schema AND c.relkind = 'S' AND c.relname LIKE :prefix "
            "ORDER BY c.relname"
        ),
        {"schema": schema_oid, "prefix": _PREFIX},
    ):
        if fed:
            # A default calls nextval() with the inserting role's rights: USAGE where the role inserts rows.
            privileges = _DEFAULTS["sequence"] if inserts.intersection(fed) else ()
        elif owned:
            # An identity column's sequence: the database takes its numbers whatever the inserting role holds.
            privileges = ()
        else:
            privileges = _EXCEPTIONS.get(relname, _DEFAULTS["sequence"])
        objects.append(StoreObject("sequence", name, oid, owner, privileges))
    for oid, name, proname, trigger, owner in conn.execute(
        text(
            "SELECT p.oid, p.oid::regprocedure::text, p.proname, p.prorettype = 'trigger'::regtype, "
            "pg_get_userbyid(p.proowner) FROM pg_proc AS p WHERE p.pronamespace = :schema "
            "AND p.prokind IN ('f', 'p') AND p.proname LIKE :prefix ORDER BY 2"
        ),
        {"schema": schema_oid, "prefix": _PREFIX},
    ):
        privileges = () if trigger else _EXCEPTIONS.get(proname, _DEFAULTS["routine"])
        objects.append(StoreObject("routine", name, oid, owner, privileges))
    return objects


def _columns(conn: Connection, table_oid: int) -> list[tuple[str, bool]]:
    """A table's columns in order, each with whether the database fills it in itself: an identity or generated
    column, or one whose default calls a sequence."""
    return [
        (str(name), bool(filled))
        for name, filled in conn.execute(
            text(
                "SELECT a.attname, a.attidentity <> '' OR a.attgenerated <> '' OR EXISTS ("
                " SELECT 1 FROM pg_attrdef AS ad JOIN pg_depend AS d ON d.classid = 'pg_attrdef'::regclass "
                " AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass "
                " JOIN pg_class AS s ON s.oid = d.refobjid AND s.relkind = 'S' "
                " WHERE ad.adrelid = a.attrelid AND ad.adnum = a.attnum) "
                "FROM pg_attribute AS a WHERE a.attrelid = :oid AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum"
            ),
            {"oid": table_oid},
        )
    ]


def grant_runtime_role(store: IntegrityStore, role: str) -> RuntimeGrants:
    """Grant ``role`` exactly what the product needs on the store's objects and revoke everything more.

    Run it as the store's owner, after migrating (``airflow integrity db migrate --runtime-role ROLE``);
    running it again changes nothing, and after a later migration covers the objects it added.

    Args:
        store: The store, reached as its owner role.
        role: The PostgreSQL role every Airflow component connects as.

    Raises:
        RuntimeRoleError: The store is not PostgreSQL, the role does not exist, is the role this runs as, is
            a superuser, or can still do more (or less) than it should afterwards (for example through a role
            it belongs to); the message names each such right and how to remove it.
    """
    _require_postgres(store, role)
    with store.begin() as conn:
        # The migration lock: grants never interleave with a migration changing the same catalog rows.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": migrate._PG_MIGRATION_LOCK_KEY})
        facts = _usable_role(conn, role)
        schema_oid, schema = _schema(conn, store)
        database = str(conn.execute(text("SELECT current_database()")).scalar_one())
        grantee, db = _quote(conn, role), _quote(conn, database)
        objects = store_objects(conn, schema_oid)
        _require_ownership(conn, store, role, objects)
        statements = [
            f"GRANT CONNECT ON DATABASE {db} TO {grantee}",
            f"REVOKE CREATE, TEMPORARY ON DATABASE {db} FROM {grantee}, PUBLIC",
            f"GRANT USAGE ON SCHEMA {schema} TO {grantee}",
            f"REVOKE CREATE ON SCHEMA {schema} FROM {grantee}, PUBLIC",
        ]
        for obj in objects:
            keyword = _KEYWORD[obj.kind]
            # On a table, this revokes the grants on its columns too.
            statements.append(f"REVOKE ALL ON {keyword} {obj.name} FROM {grantee}, PUBLIC")
            whole = [priv for priv in obj.privileges if priv != "INSERT"]
            if whole:
                statements.append(f"GRANT {', '.join(whole)} ON {keyword} {obj.name} TO {grantee}")
            if "INSERT" in obj.privileges:
                columns = ", ".join(_column(conn, column) for column in obj.insert_columns)
                statements.append(f"GRANT INSERT ({columns}) ON {keyword} {obj.name} TO {grantee}")
        for statement in statements:
            conn.execute(text(statement))
        problems = _problems(conn, role, facts, schema_oid, schema, database, objects)
    if problems:
        raise RuntimeRoleError(_report(store, role, problems))
    return RuntimeGrants(role, schema, database, tuple(objects))


def _require_ownership(conn: Connection, store: IntegrityStore, role: str, objects: list[StoreObject]) -> None:
    usable: dict[str, bool] = dict(
        conn.execute(
            text(
                "SELECT r.rolname, pg_has_role(current_user, r.oid, 'USAGE') FROM pg_roles AS r "
                "WHERE r.rolname = ANY(:owners)"
            ),
            {"owners": sorted({obj.owner for obj in objects})},
        ).all()
    )
    foreign = sorted({obj.owner for obj in objects if not usable.get(obj.owner)})
    if foreign:
        owned = ", ".join(f"{obj.name} ({obj.owner})" for obj in objects if obj.owner in foreign)
        raise RuntimeRoleError(
            f"The integrity store {store.location.display} has objects this role does not own: {owned}. The owner "
            "role must own every object of the store (the runtime role none): as a superuser, in the store's "
            f"database, run REASSIGN OWNED BY {', '.join(_quote(conn, o) for o in foreign)} TO <the owner role>; "
            f"then run `airflow integrity db migrate --runtime-role {role}` as the owner."
        )


def check_runtime_role(store: IntegrityStore, role: str) -> list[str]:
    """What ``role`` can do beyond (or lacks of) the runtime privileges, each with its fix; empty when exact.

    Asks the server for the role's effective rights, PUBLIC's and those of the roles it belongs to included.

    Raises:
        RuntimeRoleError: The store is not PostgreSQL, has no schema yet, or the role does not exist.
    """
    _require_postgres(store, role)
    with store.read() as conn:
        facts = _role(conn, role)
        schema_oid, schema = _schema(conn, store)
        database = str(conn.execute(text("SELECT current_database()")).scalar_one())
        return _problems(conn, role, facts, schema_oid, schema, database, store_objects(conn, schema_oid))


def _report(store: IntegrityStore, role: str, problems: list[str]) -> str:
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return (
        f"Runtime role {role!r} of the integrity store {store.location.display} does not hold exactly the "
        f"runtime privileges:\n{listed}\nFix these, then run `airflow integrity db migrate --runtime-role {role}` "
        "as the store's owner again."
    )


def _problems(
    conn: Connection,
    role: str,
    facts: dict[str, Any],
    schema_oid: int,
    schema: str,
    database: str,
    objects: list[StoreObject],
) -> list[str]:
    quoted = _quote(conn, role)
    if facts["superuser"]:
        return [
            f"{role} is a superuser: it can alter any table and disable any trigger "
            f"(ALTER ROLE {quoted} NOSUPERUSER)"
        ]
    problems = []
    if facts["createrole"]:
        problems.append(
            f"{role} has CREATEROLE, with which it can make itself a member of other roles "
            f"(ALTER ROLE {quoted} NOCREATEROLE)"
        )
    owners = sorted({obj.owner for obj in objects})
    for member_of, superuser in conn.execute(
        text(
            "SELECT r.rolname, r.rolsuper FROM pg_roles AS r WHERE r.rolname <> :role "
            "AND pg_has_role(CAST(:role AS name), r.oid, 'MEMBER') "
            "AND (r.rolsuper OR r.rolcreaterole OR r.rolname = ANY(:owners) OR r.oid = (SELECT n.nspowner "
            "FROM pg_namespace AS n WHERE n.oid = :schema)) ORDER BY 1"
        ),
        {"role": role, "owners": owners, "schema": schema_oid},
    ):
        what = "a superuser" if superuser else "a role that owns store objects or can create roles"
        problems.append(
            f"{role} is a member of {member_of}, {what}: it can SET ROLE {member_of} and alter tables or disable "
            f"triggers (REVOKE {_quote(conn, member_of)} FROM {quoted}; what it holds through that role is not "
            "listed here)"
        )
    if problems:
        return problems
    if role in owners:
        owned = ", ".join(obj.name for obj in objects if obj.owner == role)
        problems.append(
            f"{role} owns {owned}, so it can disable their triggers: as a superuser, in database {database}, run "
            f"REASSIGN OWNED BY {quoted} TO <the owner role>"
        )
    problems += _database_problems(conn, role, schema_oid, schema, database)
    version = int(conn.execute(text("SELECT current_setting('server_version_num')")).scalar_one())
    for obj in objects:
        problems += _object_problems(conn, role, obj, version)
    return problems


def _database_problems(conn: Connection, role: str, schema_oid: int, schema: str, database: str) -> list[str]:
    quoted, db = _quote(conn, role), _quote(conn, database)
    problems = []
    row = conn.execute(
        text(
            "SELECT has_database_privilege(CAST(:role AS name), current_database(), 'CONNECT'), "
            "has_database_privilege(CAST(:role AS name), current_database(), 'CREATE'), "
            "has_database_privilege(CAST(:role AS name), current_database(), 'TEMPORARY'), "
            "has_schema_privilege(CAST(:role AS name), CAST(:schema AS oid), 'USAGE')"
        ),
        {"role": role, "schema": schema_oid},
    ).one()
    if not row[0]:
        problems.append(
            f"{role} cannot CONNECT to database {database} (GRANT CONNECT ON DATABASE {db} TO {quoted})"
        )
    for allowed, right in ((row[1], "CREATE"), (row[2], "TEMPORARY")):
        if allowed:
            problems.append(
                f"{role} has {right} on database {database} (as the database's owner: REVOKE {right} ON DATABASE "
                f"{db} FROM PUBLIC, {quoted}, and from the roles it belongs to)"
            )
    if not row[3]:
        problems.append(f"{role} cannot use schema {schema} (GRANT USAGE ON SCHEMA {schema} TO {quoted})")
    for (name,) in conn.execute(
        text(
            "SELECT n.nspname FROM pg_namespace AS n "
            "WHERE has_schema_privilege(CAST(:role AS name), n.oid, 'CREATE') "
            "AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' ORDER BY 1"
        ),
        {"role": role},
    ):
        problems.append(
            f"{role} can CREATE objects in schema {name} (as the schema's owner: REVOKE CREATE ON SCHEMA "
            f"{_quote(conn, name)} FROM PUBLIC, {quoted})"
        )
    if int(conn.execute(text("SELECT current_setting('server_version_num')")).scalar_one()) >= 150000 and (
        conn.execute(
            text("SELECT has_parameter_privilege(CAST(:role AS name), 'session_replication_role', 'SET')"),
            {"role": role},
        ).scalar_one()
    ):
        problems.append(
            f"{role} may SET session_replication_role, which switches triggers off "
            f"(REVOKE SET ON PARAMETER session_replication_role FROM {quoted})"
        )
    return problems


def _object_problems(conn: Connection, role: str, obj: StoreObject, version: int) -> list[str]:
    kind = "table" if obj.kind == "view" else obj.kind
    privileges = {
        "table": (*_TABLE_PRIVILEGES, *(("MAINTAIN",) if version >= 170000 else ())),
        "sequence": ("USAGE", "SELECT", "UPDATE"),
        "routine": ("EXECUTE",),
    }[kind]
    held = {
        priv
        for priv, allowed in conn.execute(
            text(f"SELECT p.priv, {_ASK[kind]} FROM unnest(CAST(:privs AS text[])) AS p(priv)"),
            {"role": role, "oid": obj.oid, "privs": list(privileges)},
        )
        if allowed
    }
    problems = []
    keyword = _KEYWORD[obj.kind]
    # INSERT granted per column is checked column by column below.
    by_column = "INSERT" in obj.privileges
    expected = {priv for priv in obj.privileges if not (by_column and priv == "INSERT")}
    missing = [priv for priv in obj.privileges if priv in expected and priv not in held]
    if missing:
        problems.append(
            f"{role} lacks {', '.join(missing)} on {obj.kind} {obj.name}, which the product needs ("
            f"{_rerun(role, obj)})"
        )
    for priv in sorted(held - expected - ({"INSERT"} if by_column else set())):
        grantees = _granted_through(conn, role, obj.kind, {"oid": obj.oid}, priv)
        fix = _revoke(conn, role, grantees, priv, keyword, obj.name)
        problems.append(f"{role} can {priv} on {obj.kind} {obj.name} through {_through(role, grantees)} ({fix})")
    if by_column:
        problems += _insert_problems(conn, role, obj)
    return problems


def _insert_problems(conn: Connection, role: str, obj: StoreObject) -> list[str]:
    """INSERT on the table as a whole, on a column the product never names, or missing on one it does."""
    whole = conn.execute(
        text("SELECT has_table_privilege(CAST(:role AS name), CAST(:oid AS oid), 'INSERT')"),
        {"role": role, "oid": obj.oid},
    ).scalar_one()
    if whole:
        grantees = _granted_through(conn, role, "relation", {"oid": obj.oid}, "INSERT")
        fix = _revoke(conn, role, grantees, "INSERT", "TABLE", obj.name)
        included = f", {', '.join(obj.withheld)} included" if obj.withheld else ""
        after = f"; that revokes its column grants too: then {_rerun(role, obj)}" if grantees else ""
        return [
            f"{role} can INSERT on table {obj.name} as a whole{included}, through "
            f"{_through(role, grantees)} ({fix}{after})"
        ]
    allowed: dict[str, bool] = dict(
        conn.execute(
            text(
                "SELECT a.attname, has_column_privilege(CAST(:role AS name), a.attrelid, a.attnum, 'INSERT') "
                "FROM pg_attribute AS a WHERE a.attrelid = :oid AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum"
            ),
            {"role": role, "oid": obj.oid},
        ).all()
    )
    problems = []
    missing = [column for column in obj.insert_columns if not allowed.get(column)]
    if missing:
        problems.append(
            f"{role} lacks INSERT on {_columns_named(missing)} of table {obj.name}, which the product needs "
            f"({_rerun(role, obj)})"
        )
    extra: dict[tuple[str, ...], list[str]] = {}
    for column, granted in allowed.items():
        if granted and column not in obj.insert_columns:
            grantees = _granted_through(conn, role, "column", {"oid": obj.oid, "column": column}, "INSERT")
            extra.setdefault(tuple(grantees), []).append(column)
    for holders, columns in extra.items():
        quoted = ", ".join(_column(conn, column) for column in columns)
        fix = _revoke(conn, role, list(holders), "INSERT", "TABLE", obj.name, quoted)
        problems.append(
            f"{role} can INSERT {_columns_named(columns)} of table {obj.name}, which the product never names, "
            f"through {_through(role, list(holders))} ({fix})"
        )
    return problems


def _columns_named(columns: list[str]) -> str:
    return f"column{'s' if len(columns) > 1 else ''} {', '.join(columns)}"


def _rerun(role: str, obj: StoreObject) -> str:
    return f"run `airflow integrity db migrate --runtime-role {role}` as {obj.owner}, the object's owner"


def _through(role: str, grantees: list[str]) -> str:
    """How ``role`` came by a right: the grantees whose grants it holds, or a predefined role."""
    if not grantees:
        return "a predefined role it belongs to, such as pg_write_all_data"
    return ", ".join("its own grant" if name == role else name for name in grantees)


def _revoke(
    conn: Connection, role: str, grantees: list[str], priv: str, keyword: str, name: str, columns: str = ""
) -> str:
    """The statement that takes away a right ``role`` holds through ``grantees``."""
    if not grantees:
        return f"revoke that role from {_quote(conn, role)}"
    on = f" ({columns})" if columns else ""
    return f"REVOKE {priv}{on} ON {keyword} {name} FROM {', '.join(_grantee(conn, n) for n in grantees)}"


def _granted_through(conn: Connection, role: str, kind: str, params: dict[str, Any], priv: str) -> list[str]:
    """The grantees (``role``, PUBLIC, roles it belongs to) of the grants of ``priv`` on an object of ``kind``
    (or, for ``"relation"``, on the table alone; for ``"column"``, on one column)."""
    acl = {"relation": _RELATION_ACL, "column": _COLUMN_ACL}.get(kind) or _ACL[kind]
    grantees = conn.execute(
        text(
            f"SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END "
            f"FROM ({acl}) AS o(acl), aclexplode(o.acl) AS a "
            "WHERE a.privilege_type = :priv "
            "AND (a.grantee = 0 OR pg_has_role(CAST(:role AS name), a.grantee, 'USAGE')) "
            "ORDER BY 1"
        ),
        {**params, "priv": priv, "role": role},
    ).scalars()
    return [str(name) for name in grantees]


def store_grantees(store: IntegrityStore) -> list[str]:
    """Roles other than the owner that hold privileges on the store's audit intake: the runtime roles that
    need ``--runtime-role`` again after a migration added objects. Empty on SQLite and before migrating."""
    if store.backend != "postgresql":
        return []
    with store.read() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT DISTINCT pg_get_userbyid(a.grantee) FROM pg_class AS c, aclexplode(c.relacl) AS a "
                    "WHERE c.oid = to_regclass('integrity_audit_intake') AND a.grantee NOT IN (0, c.relowner) "
                    "ORDER BY 1"
                )
            ).scalars()
        )


def refused_migration(store: IntegrityStore, exc: BaseException) -> SchemaNotCurrentError | None:
    """The error to raise when a migration failed because this process's role may not change the schema.

    A runtime role owns nothing and may create nothing, so with ``[integrity] auto_migrate`` on it cannot
    bring a stale schema up to date: this names that, and who can. ``None`` for any other failure.

    Args:
        store: The store the migration ran on.
        exc: What the migration raised (a SQLAlchemy or psycopg error).
    """
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) != "42501":  # insufficient_privilege
        return None
    role = store.location.url.username or "the connection's role"
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return SchemaNotCurrentError(
        f"The integrity store {store.location.display} needs schema revision {migrate.HEAD_REVISION}, and role "
        f"{role!r}, which this process connects as, may not migrate it ({reason}). Only the store's owner role "
        f"changes its schema: run `airflow integrity db migrate --runtime-role {role}` with a connection that "
        "logs in as the owner, and set [integrity] auto_migrate = False for the Airflow components."
    )
